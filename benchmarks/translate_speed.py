"""Translation and COMET throughput: ait's batched generation vs one-by-one vs plain HF `generate`.

Prints, side by side, sentences/s and generated tokens/s for
- one-by-one: ait's Translator with batch size 1;
- ait batched: length-sorted, left-padded batches of --batch-size, stopping rows at newline/EOS;
- plain generate: the same batch size, input order, the tokenizer's left padding, every row generating
  until EOS or max_new_tokens (the usual HF loop; the reference point of the issue: on an H100 with a
  BLOOMZ-7b1-shaped model, 1.8k new tokens/s at batch 32 and 3.6k at batch 128);
and COMET segments/s (ait's COMET metric, which calls comet's predict).

Without --model it builds the tiny BLOOM of the test suite (CPU figures only say the code paths work).
On a GPU pass a real model, e.g.
    python benchmarks/translate_speed.py --model bigscience/bloomz-7b1 --sentences 512 --batch-size 32 \
        --max-new-tokens 128 --comet-model Unbabel/wmt22-comet-da
Sources: FLORES-200 devtest English (../shared/data) when present, else generated pseudo-sentences.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FLORES_EN = REPO.parent / "shared" / "data" / "flores200" / "devtest" / "eng_Latn.devtest"
FLORES_KK = REPO.parent / "shared" / "data" / "flores200" / "devtest" / "kaz_Cyrl.devtest"


def sources(n: int) -> tuple[list[str], list[str]]:
    if FLORES_EN.is_file() and FLORES_KK.is_file():
        en = FLORES_EN.read_text(encoding="utf-8").splitlines()
        kk = FLORES_KK.read_text(encoding="utf-8").splitlines()
        return en[:n], kk[:n]
    from aligninstruct_cli.tiny import sample_texts

    texts = sample_texts(2 * n, seed=1)
    return texts[:n], texts[n:]


def tiny_model(workdir: Path) -> str:
    from transformers import AutoTokenizer

    from aligninstruct_cli.tiny import build_tiny_bloom, sample_texts, train_tokenizer

    train_tokenizer(sample_texts(), workdir / "tok", vocab_size=600)
    build_tiny_bloom(workdir / "bloom", AutoTokenizer.from_pretrained(workdir / "tok"))
    return str(workdir / "bloom")


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run_translator(loaded, records, batch_size: int, max_new_tokens: int) -> dict:
    from aligninstruct_cli.generation import Translator

    translator = Translator(loaded, batch_size=batch_size, max_new_tokens=max_new_tokens)
    sync(loaded.device)
    start = time.perf_counter()
    out = list(translator.translate(records))
    sync(loaded.device)
    seconds = time.perf_counter() - start
    return {"sentences": len(out), "new_tokens": translator.stats.new_tokens, "seconds": seconds}


def run_plain_generate(loaded, prompts: list[str], batch_size: int, max_new_tokens: int) -> dict:
    """The common HF loop: fixed batches in input order, no stopping beyond EOS."""
    import torch

    from aligninstruct_cli.generation import _count_generated

    tok, model = loaded.tokenizer, loaded.model
    tok.padding_side = "left"
    new_tokens = 0
    sync(loaded.device)
    start = time.perf_counter()
    for k in range(0, len(prompts), batch_size):
        enc = tok(prompts[k:k + batch_size], return_tensors="pt", padding=True, return_token_type_ids=False)
        enc = {key: v.to(loaded.device) for key, v in enc.items()}
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            new_tokens += _count_generated(row, tok.eos_token_id, tok.pad_token_id)
    sync(loaded.device)
    return {"sentences": len(prompts), "new_tokens": new_tokens, "seconds": time.perf_counter() - start}


def run_comet(comet_model: str, srcs, hyps, refs, batch_size: int) -> dict:
    from aligninstruct_cli.metrics.comet import COMET

    scorer = COMET(comet_model, batch_size=batch_size)
    scorer.segment_scores(srcs[:batch_size], hyps[:batch_size], refs[:batch_size])  # warm-up
    start = time.perf_counter()
    scorer.segment_scores(srcs, hyps, refs)
    return {"segments": len(hyps), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model id or directory (default: a tiny BLOOM built on the spot)")
    parser.add_argument("--adapter")
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", "--dtype", default="auto", help="auto|bf16|fp16|fp32 (as ait translate)")
    parser.add_argument("--one-by-one", type=int, default=None,
                        help="sentences for the one-by-one run (default: all; it is the slow one)")
    parser.add_argument("--comet-model", help="COMET model (default: a tiny COMET built on the spot)")
    parser.add_argument("--comet-batch-size", type=int, default=16)
    parser.add_argument("--comet-segments", type=int, default=None, help="default: --sentences")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from aligninstruct_cli.generation import Translator
    from aligninstruct_cli.models import load_model, precision_option

    workdir = Path(tempfile.mkdtemp(prefix="ait-bench-"))
    model_id = args.model or tiny_model(workdir)
    en, kk = sources(args.sentences)
    records = [{"id": i, "src_lang": "en", "tgt_lang": "kk", "src": s, "tgt": t} for i, (s, t) in enumerate(zip(en, kk))]
    loaded = load_model(model_id, args.adapter, device=args.device, precision=precision_option(args.precision))
    prompts = [Translator(loaded).prompt.render("en", "kk", r["src"]) for r in records]
    run_translator(loaded, records[:min(4, len(records))], args.batch_size, 4)  # warm-up (kernels, caches)

    n_single = args.one_by_one or len(records)
    rows = {
        "one-by-one (ait, batch 1)": run_translator(loaded, records[:n_single], 1, args.max_new_tokens),
        f"ait batched (batch {args.batch_size})": run_translator(loaded, records, args.batch_size,
                                                                args.max_new_tokens),
        f"plain generate (batch {args.batch_size})": run_plain_generate(loaded, prompts, args.batch_size,
                                                                        args.max_new_tokens),
    }
    device = torch.cuda.get_device_name(loaded.device) if loaded.device.type == "cuda" else "CPU"
    print(f"model {model_id} on {device} ({loaded.precision}), {len(records)} sentences en→kk, "
          f"max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}")
    print(f"{'run':<34} {'sentences':>9} {'seconds':>9} {'sent/s':>9} {'new tok':>9} {'tok/s':>9}")
    base = None
    for name, r in rows.items():
        sps, tps = r["sentences"] / r["seconds"], r["new_tokens"] / r["seconds"]
        base = base or sps
        print(f"{name:<34} {r['sentences']:>9} {r['seconds']:>9.2f} {sps:>9.1f} {r['new_tokens']:>9} {tps:>9.0f}"
              f"   ×{sps / base:.1f} sent/s vs one-by-one")

    from aligninstruct_cli.tiny import build_tiny_comet

    comet_model = args.comet_model or str(build_tiny_comet(workdir / "comet").parents[1])
    n_comet = args.comet_segments or len(records)
    hyps = (kk * (n_comet // max(1, len(kk)) + 1))[:n_comet]
    srcs = (en * (n_comet // max(1, len(en)) + 1))[:n_comet]
    refs = hyps[1:] + hyps[:1]
    comet = run_comet(comet_model, srcs, hyps, refs, args.comet_batch_size)
    print(f"COMET {comet_model}: {comet['segments']} segments in {comet['seconds']:.2f} s = "
          f"{comet['segments'] / comet['seconds']:.1f} segments/s (batch {args.comet_batch_size})")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model_id, "device": device, "translate": rows,
                                               "comet": comet}, indent=2))


if __name__ == "__main__":
    main()
