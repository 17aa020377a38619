#!/usr/bin/env bash
# One GPU session's checks, as one script (a lent GPU comes for minutes, one command at a time):
#   1. train_throughput.py at BLOOM shapes 560m, 1b1, 7b1 (plain transformers+peft loop vs ait's pipeline);
#   2. the real chain on one GPU: ait data (local FLORES) -> align -> build -> `ait train` through the
#      deepspeed launcher (two-stage curriculum, bf16, NCCL) -> final/ loaded by stock PEFT in a fresh
#      process -> ait translate -> ait score;
#   3. `ait train --zero 3`: the saved adapter holds full LoRA tensors;
#   4. `ait train --offload optimizer` (DeepSpeed's CPU Adam, compiled on first use);
#   5. issue 15's speed figures: gen-1b1, gen-7b1 (translate_speed.py: ait's engine vs plain HF generate at
#      batch 32, 64 new tokens, identical greedy output asserted) and train-global (train_throughput.py
#      --global-batch 512 at the 7b1 shape: a plain loop accumulating micro-batches of 4 vs ait with the
#      micro-batch it chooses and compiled blocks).
#   6. issue 25's: gen-1b1 and gen-7b1 now time ait's own decoding loop (CUDA graphs) against plain generate
#      and print HF generate's agreement with itself across two batchings beside ait's (GEN_HF_STATIC=1 adds
#      transformers' static path as a third row); comet: COMET segments/s of ait's scorer and of comet's own
#      predict at batch 16 on the same 512 segments with a random-weight COMET of wmt22-comet-da's shape
#      (XLM-R large), ait under the image's transformers and both in a side environment with transformers
#      4.57 + unbabel-comet installed from the wheels in $WHEELS (benchmarks/gpu_wheels.sh makes them; without
#      them comet's figure is skipped); fp16-resume: `ait train --precision fp16` straight, killed after step 8
#      and `--resume`d (DeepSpeed's fp16 checkpoint through ait's torch.load allow-list), adapters compared;
#      experiment: `ait experiment run` of the demo's config on one GPU, per-step times from its done.json.
# Each step has its own time limit and log (OUT_DIR/<step>.log); a summary goes to stdout.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [FLORES_DIR]                          # env chain zero3 offload
#   GPU_CHECK_STEPS="env bench-560m bench-1b1 bench-7b1" bash benchmarks/gpu_check.sh OUT_DIR
#   GPU_CHECK_STEPS="env gen-1b1 gen-7b1 train-global" bash benchmarks/gpu_check.sh OUT_DIR   # issue 15 (~9 min)
#   GPU_CHECK_STEPS="env gen-1b1 gen-7b1" bash benchmarks/gpu_check.sh OUT_DIR                # issue 25, part 1
#   WHEELS=gpu-wheels GPU_CHECK_STEPS="comet chain fp16-resume experiment" bash benchmarks/gpu_check.sh OUT_DIR
#
# Each set fits one 10-minute command (issue 25's sets by their limits, not yet measured); the limits are
# LIMIT_<STEP> variables (seconds). zero3, offload and fp16-resume reuse what chain made.
# FLORES_DIR holds dev/ and devtest/ with eng_Latn and kaz_Cyrl (default ../shared/data/flores200).
# `ait` runs as `python3 -m aligninstruct_cli` from this checkout, so nothing needs installing but the
# packages. GPU_CHECK_SMALL=1 runs the same steps with tiny shapes (to try the script on a CPU).
set -u
OUT=$(realpath -m "${1:?usage: gpu_check.sh OUT_DIR [FLORES_DIR]}")
FLORES=$(realpath "${2:-../shared/data/flores200}")
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
AIT="$PY -m aligninstruct_cli"
WORK=$(mktemp -d)
SMALL=${GPU_CHECK_SMALL:-0}

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to OUT/NAME.log, print rc, time and the log's end
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout "$limit" bash -c '"$@"' _ "$@" >"$OUT/$name.log" 2>&1  # bash -c: the steps are functions
    rc=$?
    echo "== $name: rc=$rc in $(($(date +%s) - start)) s (limit $limit)" | tee -a "$OUT/summary.txt"
    grep -vE "^\s*$|Warning|warn\(" "$OUT/$name.log" | tail -n "${TAIL:-12}"
    return $rc
}

bench() {  # bench PRESET BATCHES RECORDS (BATCHES: comma-separated records per step)
    if [ "$SMALL" = 1 ]; then
        set -- tiny 8,16 96
        local shape="--hidden 64 --layers 2 --heads 4 --vocab 2000 --bpe-vocab 1000"
    else
        local shape="--preset $1"
    fi
    $PY "$REPO/benchmarks/train_throughput.py" $shape --batch-size "$2" --records "$3" --compile \
        --flores "$FLORES/dev"
}

gen() {  # gen PRESET: generation speed and identical output (translate_speed.py)
    if [ "$SMALL" = 1 ]; then
        set -- tiny --sentences 24 --batch-size 8 --max-new-tokens 16 --cache static
    else
        set -- "$1" --sentences "${GEN_SENTENCES:-256}" --batch-size 32 --max-new-tokens 64 \
            --compile-backend "${GEN_BACKENDS:-inductor}" ${GEN_HF_STATIC:+--hf-static}
    fi
    local preset=$1
    shift
    $PY "$REPO/benchmarks/translate_speed.py" --preset "$preset" "$@" --comet-segments 0 --json "$OUT/gen-$preset.json"
}

comet_bench() {  # COMET segments/s: ait's scorer here; ait's and comet's predict in a transformers-4.57 side env
    set -ex
    if [ "$SMALL" = 1 ]; then
        local args="--comet-segments 48 --comet-shape toy"
    else
        local args="--comet-segments ${COMET_SEGMENTS:-512} --comet-shape large --comet-dir $WORK/comet-large"
    fi
    $PY "$REPO/benchmarks/translate_speed.py" --comet-only $args --comet-batch-size 16 --json "$OUT/comet-image.json"
    if [ -z "$WHEELS" ] || ! ls "$WHEELS"/unbabel_comet-*.whl >/dev/null 2>&1; then
        echo "comet predict: skipped (no unbabel-comet wheels in WHEELS='$WHEELS'; benchmarks/gpu_wheels.sh)"
        return 0
    fi
    # the image's torch (and numpy, pandas, scipy where it has them) + transformers 4.57 and comet from the wheels
    $PY -m venv --system-site-packages "$WORK/comet-env"
    "$WORK/comet-env/bin/python" -m pip install -q --no-index --no-deps "$WHEELS"/transformers-4.*.whl \
        "$WHEELS"/tokenizers-0.22*.whl "$WHEELS"/huggingface_hub-0.*.whl "$WHEELS"/unbabel_comet-*.whl \
        "$WHEELS"/pytorch_lightning-*.whl "$WHEELS"/lightning_utilities-*.whl "$WHEELS"/torchmetrics-*.whl \
        "$WHEELS"/entmax-*.whl "$WHEELS"/jsonargparse-*.whl
    "$WORK/comet-env/bin/python" "$REPO/benchmarks/translate_speed.py" --comet-only $args --comet-batch-size 16 \
        --json "$OUT/comet-side.json"
}

fp16_resume() {  # ait train --precision fp16: straight, and killed after step 8 then --resume'd; same adapter?
    set -ex
    cd "$WORK"
    local precision=fp16
    if [ "$SMALL" = 1 ]; then precision=fp32; fi  # no fp16 training on a CPU
    local common="--model base --data mt=mt.jsonl --curriculum mt --epochs 1 --batch-size 16 --lr 1e-3
        --precision $precision --save-every 4 --log-every 1 --num-gpus 1 --seed 3"
    $AIT train $common -o runs/fp16-straight
    AIT_DEBUG_KILL_AFTER_STEP=8 $AIT train $common -o runs/fp16-resumed || echo "killed as planned (rc $?)"
    $PY -c "import json; print('checkpoint:', json.load(open('runs/fp16-resumed/checkpoints/state.json'))['resume'])"
    $AIT train $common -o runs/fp16-resumed --resume
    $PY - <<'EOF'
import json, os
from safetensors.torch import load_file
a = load_file("runs/fp16-straight/final/adapter_model.safetensors")
b = load_file("runs/fp16-resumed/final/adapter_model.safetensors")
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
losses = [[json.loads(line)["loss"] for line in open(f"runs/{r}/metrics.jsonl") if '"loss"' in line]
          for r in ("fp16-straight", "fp16-resumed")]
same = losses[0] == losses[1]
print("fp16 resume: adapter max |straight - resumed| =", diff, "; losses identical:", same)
json.dump({"max_abs_diff": diff, "losses_identical": same, "steps": len(losses[0])},
          open(os.environ["OUT"] + "/fp16-resume.json", "w"))
EOF
}

experiment() {  # the demo's study on one GPU; per-step times from each step's done.json
    set -ex
    cd "$WORK"
    local small=()
    if [ "$SMALL" = 1 ]; then small=(--set toy.seen=2000 --set toy.unseen=300 --set toy.dev=40 --set toy.test=40); fi
    $AIT experiment run "$REPO/examples/demo.yaml" -o "$WORK/demo-gpu" --set train.num_gpus=1 \
        --set env.OMP_NUM_THREADS=4 "${small[@]}"
    $PY - <<'EOF'
import json, os
from pathlib import Path
steps = []
for done in sorted(Path(os.environ["WORK"], "demo-gpu").rglob("done.json")):
    record = json.loads(done.read_text())
    steps.append({"step": ", ".join(record["names"]), "kind": record["kind"], "seconds": record["seconds"]})
steps.sort(key=lambda s: -s["seconds"])
for s in steps:
    print(f"{s['seconds']:8.1f} s  {s['kind']:<10} {s['step']}")
print(f"{sum(s['seconds'] for s in steps):8.1f} s  total over {len(steps)} steps")
json.dump({"steps": steps}, open(os.environ["OUT"] + "/experiment.json", "w"), indent=1)
EOF
}

train_global() {  # the paper's global batch: plain accumulation vs ait's chosen micro-batch (train_throughput.py)
    if [ "$SMALL" = 1 ]; then
        local shape="--hidden 64 --layers 2 --heads 4 --vocab 2000 --bpe-vocab 1000" total=16 records=48
    else
        local shape="--preset 7b1" total=512 records=${TRAIN_RECORDS:-1536}
    fi
    $PY "$REPO/benchmarks/train_throughput.py" $shape --global-batch "$total" --records "$records" --compile \
        --flores "$FLORES/dev" --json "$OUT/train-global.json"
}

chain() {  # the whole chain on English-Kazakh FLORES-200 (dev to train, devtest to test)
    set -ex
    cd "$WORK"
    $AIT data flores200 --source "$FLORES" --lang kk --split dev --direction en-xx -o dev.jsonl
    $AIT data flores200 --source "$FLORES" --lang kk --split devtest --direction both -o test-all.jsonl
    head -n "${TEST_LINES:-100}" test-all.jsonl >test.jsonl
    $AIT align dev.jsonl --lowercase -o aligned.jsonl
    $AIT build aligned.jsonl --objective mt -o mt.jsonl
    $AIT build aligned.jsonl --objective align --pairs-per-sentence 1 -o align.jsonl
    $PY - <<'EOF'
# the base: a BLOOM initialised from a config, with a BPE trained on the training sentences
import orjson
from aligninstruct_cli.tiny import build_tiny_bloom, train_tokenizer
import os
texts = []
for line in open("dev.jsonl", "rb"):
    r = orjson.loads(line)
    texts += [r["src"], r["tgt"]]
small = os.environ.get("GPU_CHECK_SMALL") == "1"
tok = train_tokenizer(texts, "base", vocab_size=1000 if small else 8000)
build_tiny_bloom("base", tok, hidden_size=64 if small else 1024, n_layer=2 if small else 12,
                 n_head=4 if small else 16)
EOF
    $AIT train --model base --data mt=mt.jsonl --data align=align.jsonl --curriculum mt+align,mt \
        --val mt.jsonl --epochs "${EPOCHS:-1}" --batch-size 16 --lr 1e-3 --too-long skip --num-gpus 1 -o runs/z0
    cat runs/z0/metrics.jsonl | head -n 3
    grep -h val_loss runs/z0/metrics.jsonl
    $PY -c "import json; m=json.load(open('runs/z0/run.json')); print('precision', m['precision'], 'status', m['status'])"
    # stock PEFT in a fresh process, nothing imported from ait
    env -u PYTHONPATH $PY - <<'EOF'
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("runs/z0/final")
dev = "cuda" if torch.cuda.is_available() else "cpu"
base = AutoModelForCausalLM.from_pretrained("base").to(dev)
model = PeftModel.from_pretrained(base, "runs/z0/final").to(dev).eval()
x = tok(["Translate from English to Kazakh.\nEnglish: The cat sat on the mat.\nKazakh:"], return_tensors="pt").to(dev)
out = model.generate(**x, max_new_tokens=20, do_sample=False)
print("PEFT fresh-process generation:", repr(tok.decode(out[0, x["input_ids"].shape[1]:], skip_special_tokens=True)))
EOF
    $AIT translate test.jsonl --model base --adapter runs/z0/final --batch-size 32 -o hyps.jsonl
    $AIT translate test.jsonl --model base --batch-size 32 -o hyps-base.jsonl
    $AIT score hyps-base.jsonl hyps.jsonl --metrics bleu,chrf
}

zero3() {
    set -ex
    cd "$WORK"
    $AIT train --model base --data mt=mt.jsonl --curriculum mt --epochs 1 --batch-size 16 --lr 1e-3 \
        --num-gpus 1 --zero 3 -o runs/z3
    $PY - <<'EOF'
from safetensors.torch import load_file
w = load_file("runs/z3/final/adapter_model.safetensors")
shapes = {tuple(t.shape) for t in w.values()}
empty = [k for k, t in w.items() if t.numel() == 0]
print(len(w), "tensors, shapes", sorted(shapes), "empty:", empty)
b = [t.float().abs().max().item() for k, t in w.items() if "lora_B" in k]
print("lora_B max |w| (0 = untrained):", max(b))
assert not empty and max(b) > 0
EOF
}

offload() {
    set -ex
    cd "$WORK"
    $AIT train --model base --data mt=mt.jsonl --curriculum mt --epochs 1 --batch-size 16 --lr 1e-3 \
        --num-gpus 1 --offload optimizer -o runs/off
    tail -n 2 runs/off/metrics.jsonl
}

export OUT FLORES REPO PY AIT WORK SMALL
export WHEELS="${WHEELS:-}"
export -f bench gen train_global chain zero3 offload comet_bench fp16_resume experiment
: >"$OUT/summary.txt"
run_step() {
    case $1 in
        env) step env 30 bash -c "nvidia-smi -L; $PY -c 'import torch, transformers, peft, deepspeed, sacrebleu; print(\"torch\", torch.__version__, \"transformers\", transformers.__version__, \"peft\", peft.__version__, \"deepspeed\", deepspeed.__version__, \"sacrebleu\", sacrebleu.__version__)'" ;;
        bench-560m) step bench-560m "${LIMIT_560M:-150}" bench 560m 16,64 2048 ;;
        bench-1b1) step bench-1b1 "${LIMIT_1B1:-120}" bench 1b1 16,64 1024 ;;
        bench-7b1) step bench-7b1 "${LIMIT_7B1:-180}" bench 7b1 4,16 512 ;;
        gen-1b1) step gen-1b1 "${LIMIT_GEN_1B1:-150}" gen 1b1 ;;
        gen-7b1) step gen-7b1 "${LIMIT_GEN_7B1:-270}" gen 7b1 ;;
        comet) step comet "${LIMIT_COMET:-240}" comet_bench ;;
        fp16-resume) step fp16-resume "${LIMIT_FP16:-180}" fp16_resume ;;
        experiment) step experiment "${LIMIT_EXPERIMENT:-300}" experiment ;;
        train-global) step train-global "${LIMIT_TRAIN_GLOBAL:-200}" train_global ;;
        chain) step chain "${LIMIT_CHAIN:-270}" chain ;;
        zero3) step zero3 "${LIMIT_ZERO3:-90}" zero3 ;;
        offload) step offload "${LIMIT_OFFLOAD:-120}" offload ;;
        *) echo "unknown step $1" >&2; return 2 ;;
    esac
}
for name in ${GPU_CHECK_STEPS:-env chain zero3 offload}; do
    run_step "$name"
done
if ls "$OUT"/gen-*.json "$OUT"/train-global.json "$OUT"/comet-*.json "$OUT"/fp16-resume.json \
    "$OUT"/experiment.json 2>/dev/null | grep -q .; then  # any of them
    $PY "$REPO/benchmarks/gpu_summary.py" "$OUT" | tee -a "$OUT/summary.txt"  # issues 15 and 25's figures
fi
rm -rf "$WORK"
