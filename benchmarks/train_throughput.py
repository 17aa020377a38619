"""Training throughput: ait's pipeline vs a plain transformers + peft loop, side by side.

Both train the same LoRA (paper defaults) on the same instruction records, one optimizer step per batch of
--batch-size records, AdamW, same dtype and device:
- plain: records in shuffled order, dynamic padding (pad to the batch's longest), labels -100 on prompt
  and padding, `model(..., labels=...).loss` (full-vocabulary logits for every position);
- ait: length-grouped batches (training/examples.py) and the target-only, chunked loss (training/loop.py),
  without the DeepSpeed engine around it (its cost is the same for both);
- ait+compile (with --compile): the same with its decoder blocks compiled, as `ait train --compile`.
`--batch-size 16,64` runs every pipeline at each batch size.
Printed per pipeline: real (non-pad) tokens/s, real-token fraction, MFU (6·N + 12·L·d·T FLOPs per token,
over the device's peak: the GPU table, AIT_PEAK_TFLOPS, or on CPU a measured fp32 matmul rate) and, on
a GPU, peak memory.

Records: MTInstruct both directions + AlignInstruct built from FLORES-200 dev (../shared/data) English and
--lang, so lengths follow a real distribution; the tokenizer is a byte-level BPE trained on those
sentences (--tokenizer takes a real one, e.g. bigscience/bloomz-560m's, where available). The model is
randomly initialised from a BloomConfig (--preset, or --hidden/--layers/--heads/--vocab).

    .venv/bin/python benchmarks/train_throughput.py                     # CPU, small shapes
    python benchmarks/train_throughput.py --preset 560m --batch-size 16,64 --records 2048 --compile   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from aligninstruct_cli.models import PRECISIONS  # noqa: E402  (after the path set-up; imports no torch)
FLORES = REPO.parent / "shared" / "data" / "flores200" / "dev"

PRESETS = {  # hidden, layers, heads, vocab (BLOOM shapes)
    "cpu-small": (256, 4, 4, 12000),  # the output head is ~half the FLOPs, as in bloomz-560m
    "560m": (1024, 24, 16, 250880),
    "1b1": (1536, 24, 16, 250880),
    "3b": (2560, 30, 32, 250880),
    "7b1": (4096, 30, 32, 250880),
}


def build_records(flores: Path, lang: str, n: int, seed: int) -> list[dict]:
    from aligninstruct_cli.instructions.templates import ALIGN_FALSE, ALIGN_INPUT, ALIGN_TRUE, MT_INPUT
    from aligninstruct_cli.languages import get_language

    other = get_language(lang)
    en = (flores / "eng_Latn.dev").read_text(encoding="utf-8").splitlines()
    xx = (flores / f"{other.flores}.dev").read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    records = []
    for i, (e, x) in enumerate(zip(en, xx)):
        for src, tgt, sn, tn in ((e, x, "English", other.name), (x, e, other.name, "English")):
            records.append({"id": f"mt{len(records)}", "input": MT_INPUT.format(src_name=sn, tgt_name=tn, src=src),
                            "output": tgt, "objective": "mt"})
        ew, xw = e.split(), x.split()
        a, b = rng.randrange(len(ew)), rng.randrange(len(xw))
        records.append({"id": f"al{len(records)}", "objective": "align",
                        "input": ALIGN_INPUT.format(src_name="English", tgt_name=other.name, src=e, tgt=x,
                                                    src_span=" ".join(ew[a:a + 2]), tgt_span=" ".join(xw[b:b + 2])),
                        "output": ALIGN_TRUE if rng.random() < 0.5 else ALIGN_FALSE})
    rng.shuffle(records)
    return records[:n], en + xx


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run_pipeline(name, model_factory, data, batches, device, warmup, fpt, peak, accumulation=1):
    """Train over `batches` (lists of indices), one optimizer step every `accumulation` batches; returns the
    figures measured after `warmup` batches."""
    import numpy as np
    import torch

    from aligninstruct_cli.training.examples import collate
    from aligninstruct_cli.training.loop import build_loss_module, compile_blocks, to_device

    torch.manual_seed(0)
    model = model_factory().to(device)
    if name == "ait+compile":
        compile_blocks(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                  **({"fused": True} if device.type == "cuda" else {}))
    loss_module = build_loss_module(model, recompute_chunks=True) if name.startswith("ait") else None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    real = padded = 0
    start = None
    t_first = time.perf_counter()
    for step, idx in enumerate(batches):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
            warmup_s = start - t_first
            real = padded = 0
        batch = collate(data, np.asarray(idx), data_pad_id, pad_to_multiple=8 if device.type == "cuda" else 1)
        t = to_device(batch, device)
        if name.startswith("ait"):
            loss = loss_module(**t) / len(batch["loss_targets"])
        else:
            labels = torch.full_like(t["input_ids"], -100)
            labels[t["loss_rows"], t["loss_cols"] + 1] = t["loss_targets"]
            loss = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], labels=labels).loss
        (loss / accumulation).backward()
        if (step + 1) % accumulation == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        real += batch["real_tokens"]
        padded += batch["input_ids"].size
    sync(device)
    elapsed = time.perf_counter() - start
    tps = real / elapsed
    out = {"pipeline": name, "batch_size": len(batches[0]), "accumulation": accumulation,
           "steps": len(batches) - warmup, "seconds": elapsed,
           "warmup_seconds": warmup_s, "real_tokens_per_s": tps,
           "real_token_fraction": real / padded, "mfu": tps * fpt / peak if peak else None,
           "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None}
    del model, optimizer, loss_module
    if name == "ait+compile":
        torch._dynamo.reset()  # drop the compiled graphs (and what they hold) before the next model
    import gc

    gc.collect()
    return out


data_pad_id = 0


def main(argv=None) -> int:
    global data_pad_id
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="model shape; default cpu-small on CPU, 560m on GPU")
    ap.add_argument("--hidden", type=int), ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int), ap.add_argument("--vocab", type=int)
    ap.add_argument("--batch-size", default="8", help="records per step; a comma-separated list runs each")
    ap.add_argument("--compile", action="store_true",
                    help="also run ait with its decoder blocks compiled (`ait train --compile`)")
    ap.add_argument("--records", type=int, default=128, help="records trained by each pipeline")
    ap.add_argument("--global-batch", type=int, default=None,
                    help="instead of --batch-size: optimizer steps of this many records (the paper: 512), by a "
                         "plain loop of --plain-micro records per micro-step with gradient accumulation, and by ait "
                         "(compiled blocks) with the micro-batch `ait train --global-batch` chooses on this device; "
                         "--records is rounded up to whole steps, and the first step is not timed")
    ap.add_argument("--plain-micro", type=int, default=4, help="the plain loop's micro-batch with --global-batch "
                    "(the paper's per-GPU batch for bloomz-7b1)")
    ap.add_argument("--warmup", type=int, default=3, help="steps not timed (with --compile: compiling)")
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--lang", default="kk", help="the other FLORES-200 language")
    ap.add_argument("--flores", type=Path, default=FLORES,
                    help="FLORES-200 dev folder (eng_Latn.dev, ...); default ../shared/data/flores200/dev")
    ap.add_argument("--tokenizer", default=None, help="a tokenizer to use instead of training a BPE")
    ap.add_argument("--bpe-vocab", type=int, default=8000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", choices=PRECISIONS, default="auto", help="auto: bf16 (fp16 where the GPU lacks "
                    "it) on a GPU, fp32 on a CPU, as `ait train --precision auto`")
    ap.add_argument("--threads", type=int, default=None, help="torch threads on CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from peft import get_peft_model
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    from aligninstruct_cli.models import resolve_precision, torch_dtype
    from aligninstruct_cli.tiny import train_tokenizer
    from aligninstruct_cli.training.examples import Geometry, epoch_plan, tokenize_records
    from aligninstruct_cli.training.train_options import lora_config, lora_targets_for
    from aligninstruct_cli.training.throughput import compute_params, device_peak_flops, flops_per_token

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    preset = args.preset or ("560m" if device.type == "cuda" else "cpu-small")
    hidden, layers, heads, vocab = PRESETS[preset]
    hidden, layers, heads, vocab = (args.hidden or hidden, args.layers or layers, args.heads or heads,
                                    args.vocab or vocab)
    precision = resolve_precision(args.dtype, device.type)
    dtype = torch_dtype(precision)

    records, texts = build_records(args.flores, args.lang, args.records, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = (AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer else
                     train_tokenizer(texts, Path(tmp) / "tok", vocab_size=args.bpe_vocab))
    vocab = max(vocab, len(tokenizer))
    data = tokenize_records(enumerate(records, 1), tokenizer, path="flores", max_length=args.max_length,
                            too_long="truncate", progress=False)
    data_pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = BloomConfig(vocab_size=vocab, hidden_size=hidden, n_layer=layers, n_head=heads,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=data_pad_id)

    def model_factory(on=device):
        torch.manual_seed(0)
        with torch.device(on):  # initialised where it trains: a 7b1 shape takes minutes on a CPU
            base = BloomForCausalLM(config).to(dtype)  # weights in the training dtype, as `ait train` loads them
        return get_peft_model(base, lora_config(lora_targets_for("bloom")))

    n_compute = compute_params(model_factory(on="meta"))
    fpt = flops_per_token(n_compute, config, float(data.lengths.mean()))
    peak = device_peak_flops(device)
    n = len(data)
    lengths = data.lengths
    batch_sizes = [int(x) for x in args.batch_size.split(",")]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{precision}; BLOOM shape {preset}: hidden {hidden}, layers {layers}, heads {heads}, vocab {vocab:,}; "
          f"LoRA r 8 on query_key_value", file=sys.stderr)
    print(f"{n} records (FLORES-200 dev en/{args.lang}: MT both ways + Align), tokens per record: mean "
          f"{lengths.mean():.0f}, median {np.median(lengths):.0f}, max {lengths.max()}; target tokens "
          f"{data.output_lengths.sum() / lengths.sum():.0%} of all; peak "
          f"{(peak or 0) / 1e12:.2f} TFLOP/s per device", file=sys.stderr)
    if args.global_batch:
        return global_batch_comparison(args, model_factory, data, config, device, precision, fpt, peak)
    pipelines = ("plain", "ait") + (("ait+compile",) if args.compile else ())
    results = []
    print(f"{'pipeline':<12} {'batch':>5} {'real tok/s':>11} {'real frac':>9} {'MFU':>7} {'peak GiB':>9} "
          f"{'steps':>6} {'warm-up s':>9} {'vs plain':>8}", flush=True)
    if any(-(-n // b) <= args.warmup for b in batch_sizes):
        ap.error(f"{n} records make too few batches of {max(batch_sizes)} to time after {args.warmup} warm-up steps")
    for b in batch_sizes:
        plain_batches = [list(range(i, min(i + b, n))) for i in range(0, n, b)]  # the records' (shuffled) order
        ait_batches = [bt.tolist() for bt in epoch_plan(lengths, Geometry(b, 1, 1), seed=args.seed, stage=0,
                                                         epoch=0)]
        for name in pipelines:
            try:
                r = run_pipeline(name, model_factory, data, plain_batches if name == "plain" else ait_batches,
                                 device, args.warmup, fpt, peak)
            except Exception as exc:  # noqa: BLE001  (a compiler failure should not hide the other rows)
                if name != "ait+compile":
                    raise
                print(f"{name:<12} {b:>5} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                torch._dynamo.reset()
                continue
            results.append(r)
            base = next(x for x in results if x["pipeline"] == "plain" and x["batch_size"] == b)
            r["vs_plain"] = r["real_tokens_per_s"] / base["real_tokens_per_s"]
            mfu = f"{r['mfu']:.3f}" if r["mfu"] is not None else "n/a"
            mem = f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "n/a"
            print(f"{name:<12} {b:>5} {r['real_tokens_per_s']:>11,.0f} {r['real_token_fraction']:>9.3f} {mfu:>7} "
                  f"{mem:>9} {r['steps']:>6} {r['warmup_seconds']:>9.1f} {r['vs_plain']:>7.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "preset": preset, "precision": precision,
                                               "results": results}, indent=2))
    return 0


def global_batch_comparison(args, model_factory, data, config, device, precision, fpt, peak) -> int:
    """The same optimizer steps of `--global-batch` records: a plain loop accumulating micro-batches of
    `--plain-micro`, against ait with the micro-batch that `ait train` chooses here (its memory estimate for
    the longest record) and compiled blocks, as `ait train --global-batch` runs on a GPU."""
    import numpy as np
    import torch

    from aligninstruct_cli.training.batch import micro_batch_for_memory, parameter_count
    from aligninstruct_cli.training.examples import Geometry, epoch_plan

    total = args.global_batch
    if device.type == "cuda":
        fit = micro_batch_for_memory(torch.cuda.get_device_properties(device).total_memory,
                                     params=parameter_count(config), layers=config.n_layer, hidden=config.hidden_size,
                                     heads=config.n_head, length=min(args.max_length, int(data.lengths.max())),
                                     bytes_per_value=2 if precision in ("bf16", "fp16") else 4)
    else:
        fit = 8
    micro = max(d for d in range(1, min(fit, total) + 1) if total % d == 0)
    steps = max(2, -(-args.records // total))  # the first is the warm-up (compiling)
    n = len(data)
    order = np.concatenate([np.random.default_rng(args.seed + k).permutation(n) for k in range(-(-steps * total // n))])
    plain_batches = [order[i:i + args.plain_micro].tolist() for i in range(0, steps * total, args.plain_micro)]
    ait_batches = []
    for k in range(steps):  # each optimizer step's records, length-grouped into micro-batches as ait does
        chunk = order[k * total:(k + 1) * total]
        plan = epoch_plan(data.lengths[chunk], Geometry(micro, 1, 1), seed=args.seed, stage=0, epoch=k)
        ait_batches += [chunk[b].tolist() for b in plan]
    print(f"global batch {total}: {steps} optimizer steps (first not timed); plain micro-batch {args.plain_micro} x "
          f"accumulation {total // args.plain_micro}; ait micro-batch {micro} x accumulation {total // micro} "
          f"(memory estimate: {fit} records of the longest length {int(data.lengths.max())})", flush=True)
    results = []
    for name, batches, micro_size in (("plain", plain_batches, args.plain_micro),
                                      ("ait+compile" if args.compile else "ait", ait_batches, micro)):
        accumulation = total // micro_size
        try:
            r = run_pipeline(name, model_factory, data, batches, device, accumulation, fpt, peak, accumulation)
        except Exception as exc:  # noqa: BLE001  (report, keep the other row)
            print(f"{name:<12} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        results.append(r)
        r["vs_plain"] = r["real_tokens_per_s"] / results[0]["real_tokens_per_s"]
        mfu = f"{r['mfu']:.3f}" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "n/a"
        print(f"{name:<12} micro {micro_size:>3} x {accumulation:>3}: {r['real_tokens_per_s']:>9,.0f} real tok/s, "
              f"MFU {mfu}, peak {mem} GiB, warm-up {r['warmup_seconds']:.1f} s, {r['vs_plain']:.2f}x plain", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "global_batch": total, "results": results},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
