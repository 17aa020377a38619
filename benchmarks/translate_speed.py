"""Generation and COMET throughput: ait's translate engine vs plain HF `generate`, with identical output asserted.

Rows, side by side, in sentences/s and new tokens/s:
- plain generate: batches of --batch-size in input order, the tokenizer's left padding, every row generating
  until EOS or max_new_tokens (the usual HF loop; the baseline of the speed target);
- ait: `ait translate`'s engine (length-sorted batches, rows stopped at newline/EOS, and on a GPU ait's own
  decoding loop over a static KV cache, each step one CUDA graph: `--cache auto`);
- with --hf-static: the same engine through transformers' static path (`generate(cache_implementation="static")`,
  which compiles the step), the previous fast path, for comparison;
- one-by-one (with --one-by-one N): ait at batch size 1.
Then the agreement checks: the same batches ait ran (same rows, same padding) generated again by HF `generate`
with its default dynamic cache ("identical to HF generate, same batches"), and, beside it, HF `generate`'s
agreement with itself across two batchings (those batches, and batches of half the size without filler rows or
rounded widths): the target is identical output, or at least generate's own agreement (bf16 near-ties).
Then COMET segments/s: ait's scorer (`ait score`'s default for regression models) and, where unbabel-comet is
installed, comet's own `predict` at batch 16 on the same segments, with the largest score difference.
`--comet-shape large` scores with a random-weight COMET of wmt22-comet-da's shape (XLM-R large, estimator 3072,
1024) instead of the toy one.

Models: --preset 1b1,7b1 builds randomly initialised BLOOMs of those shapes on the device (bf16, the
250,880 vocabulary; prompts tokenized by a BPE trained on the FLORES sentences), one after the other;
--model takes a real one; neither: the tiny BLOOM of the test suite (CPU figures only say the paths work).
    python benchmarks/translate_speed.py --preset 1b1,7b1 --sentences 256 --batch-size 32 --max-new-tokens 64
    python benchmarks/translate_speed.py --model bigscience/bloomz-7b1 --comet-model Unbabel/wmt22-comet-da
Sources: FLORES-200 devtest English → Kazakh (../shared/data) when present, else generated pseudo-sentences.
Exit status 1 when the equality check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
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


BACKENDS = ("inductor", "exact")  # measured once (benchmarks/README.md); transformers' default, inductor, is ait's


def compile_config(backend: str):
    """How transformers compiles the decoding step: None (its default, inductor in CUDA graphs), or inductor
    emulating eager's bf16 rounding."""
    if backend == "inductor":
        return None
    from transformers import CompileConfig

    return CompileConfig(mode=None, options={"triton.cudagraphs": True, "emulate_precision_casts": True})
PRESETS = {"tiny": (64, 2, 4), "560m": (1024, 24, 16), "1b1": (1536, 24, 16), "3b": (2560, 30, 32), "7b1": (4096, 30, 32)}
BLOOM_VOCAB = 250880


def random_bloom(preset: str, tokenizer, device, precision: str):
    """A randomly initialised BLOOM of `preset`'s shape, built on `device` in `precision`, as a LoadedModel."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    from aligninstruct_cli.models import LoadedModel, torch_dtype

    hidden, layers, heads = PRESETS[preset]
    config = BloomConfig(vocab_size=max(BLOOM_VOCAB, len(tokenizer)), hidden_size=hidden, n_layer=layers, n_head=heads,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(precision))  # built in the inference dtype: no fp32 copy of a 7b1
    try:
        with torch.device(device):
            model = BloomForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    return LoadedModel(model, tokenizer, f"random BLOOM {preset}", None, device, precision)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


TRANSLATORS: dict = {}  # one Translator per (cache, path): ait's loop keeps its captured graphs across passes


def run_translator(loaded, prompts, batch_size: int, max_new_tokens: int, cache: str = "auto",
                   fixed_shapes: bool | None = None, backend: str | None = None, own_loop: bool = True) -> dict:
    """ait's engine over `prompts`: figures and the token ids per sentence. `own_loop=False`: transformers'
    static path instead of ait's decoding loop (where the static cache is used)."""
    from aligninstruct_cli.generation import Translator

    key = (id(loaded), batch_size, max_new_tokens, cache, fixed_shapes, backend, own_loop)
    translator = TRANSLATORS.get(key)
    if translator is None:
        translator = Translator(loaded, batch_size=batch_size, max_new_tokens=max_new_tokens, cache=cache)
        if fixed_shapes is not None:
            translator.fixed_shapes = fixed_shapes
        if backend:  # how transformers compiles generate's static step (a benchmark-only comparison)
            translator.compile_config = compile_config(backend)
        translator.own_loop = translator.own_loop and own_loop
        TRANSLATORS[key] = translator
    translator.stats.new_tokens = 0
    sync(loaded.device)
    start = time.perf_counter()
    ids = translator.generate_token_ids(prompts)
    sync(loaded.device)
    seconds = time.perf_counter() - start
    decoder = translator._decoder
    return {"sentences": len(prompts), "new_tokens": translator.stats.new_tokens, "seconds": seconds,
            "static_cache": translator.static_cache, "own_loop": translator.own_loop,
            "graphs": decoder.captured if decoder is not None else 0, "ids": ids}


def run_plain_generate(loaded, prompts: list[str], batch_size: int, max_new_tokens: int) -> dict:
    """The common HF loop: fixed batches in input order, no stopping beyond EOS."""
    import torch

    from aligninstruct_cli.generation import _count_generated

    tok, model = loaded.tokenizer, loaded.model
    tok.padding_side = "left"
    new_tokens, ids = 0, []
    sync(loaded.device)
    start = time.perf_counter()
    for k in range(0, len(prompts), batch_size):
        enc = tok(prompts[k:k + batch_size], return_tensors="pt", padding=True, return_token_type_ids=False)
        enc = {key: v.to(loaded.device) for key, v in enc.items()}
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            n = _count_generated(row, tok.eos_token_id, tok.pad_token_id)
            new_tokens += n
            ids.append(row[:n])
    sync(loaded.device)
    return {"sentences": len(prompts), "new_tokens": new_tokens, "seconds": time.perf_counter() - start, "ids": ids}


def trimmed(rows, eos, pad) -> list[list[int]]:
    from aligninstruct_cli.generation import _count_generated

    return [row[:_count_generated(row, eos, pad)] for row in rows]


def prefix_agreement(a: list[int], b: list[int]) -> bool:
    """Equal up to the shorter row (ait stops a row at a newline; plain generate runs on to EOS)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def bench_model(loaded, prompts, args) -> dict:
    """Every row of the table for one model, and the equality checks."""
    import torch

    tok = loaded.tokenizer
    warm = prompts[:args.batch_size]
    run_plain_generate(loaded, warm, args.batch_size, 4)  # warm-up (kernels, allocator)
    rows = {"plain generate": run_plain_generate(loaded, prompts, args.batch_size, args.max_new_tokens)}
    ait_rows = []
    runs = [("ait", None, True)]  # (label, compile backend, ait's own loop)
    if args.hf_static:
        runs += [(f"ait via generate static ({b})" if "," in args.compile_backend else "ait via generate static",
                  b, False) for b in args.compile_backend.split(",")]
    for label, backend, own_loop in runs:
        compile_start = time.perf_counter()
        try:  # warm-up: captures / compiles every shape
            run_translator(loaded, prompts, args.batch_size, args.max_new_tokens, args.cache, backend=backend,
                           own_loop=own_loop)
        except Exception as exc:  # noqa: BLE001  (a compiler failure should not hide the other rows)
            print(f"{label}: failed: {type(exc).__name__}: {str(exc)[:400]}", flush=True)
            torch._dynamo.reset()
            continue
        warmup_s = time.perf_counter() - compile_start
        rows[label] = run_translator(loaded, prompts, args.batch_size, args.max_new_tokens, args.cache,
                                     backend=backend, own_loop=own_loop)
        rows[label]["warmup_seconds"] = warmup_s
        rows[label]["backend"] = (backend or "cuda graphs") if own_loop else backend
        ait_rows.append(label)
        torch._dynamo.reset()  # each backend compiles afresh
    if args.one_by_one:
        rows["one-by-one (ait, batch 1)"] = run_translator(loaded, prompts[:args.one_by_one], 1, args.max_new_tokens,
                                                           "dynamic")
    fixed = any(rows[label]["static_cache"] for label in ait_rows)
    reference = run_translator(loaded, prompts, args.batch_size, args.max_new_tokens, "dynamic",
                               fixed_shapes=fixed)  # the same batches and padding, HF's default cache
    theirs = trimmed(reference["ids"], tok.eos_token_id, tok.pad_token_id)
    # HF generate against itself: the same stop rule, batches of half the size, no filler rows, unrounded widths
    other = run_translator(loaded, prompts, max(1, args.batch_size // 2), args.max_new_tokens, "dynamic",
                           fixed_shapes=False)
    self_agreement = sum(a == b for a, b in zip(theirs, trimmed(other["ids"], tok.eos_token_id, tok.pad_token_id)))
    checks = {}
    for label in ait_rows:
        ours = trimmed(rows[label]["ids"], tok.eos_token_id, tok.pad_token_id)
        checks[label] = {"identical": sum(a == b for a, b in zip(ours, theirs)),
                         "generate_self_agreement": self_agreement,
                         "plain_prefix_agreement": sum(prefix_agreement(a, b)
                                                       for a, b in zip(ours, rows["plain generate"]["ids"]))}
    for r in list(rows.values()) + [reference, other]:
        r.pop("ids", None)
    TRANSLATORS.clear()  # the next model may reuse this one's id
    return {"rows": rows, "checks": checks, "sentences": len(prompts), "reference_seconds": reference["seconds"]}


def agreement_met(check: dict, sentences: int) -> bool:
    """Identical to HF generate on the same batches, or at least as close as generate is to itself."""
    return check["identical"] == sentences or check["identical"] >= check["generate_self_agreement"]


def all_agree(result: dict) -> bool:
    return bool(result["checks"]) and all(agreement_met(c, result["sentences"]) for c in result["checks"].values())


def print_model(name: str, result: dict, device_name: str, precision: str, args) -> None:
    print(f"\n{name} on {device_name} ({precision}), {result['sentences']} sentences en→kk, batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}")
    print(f"{'run':<28} {'sentences':>9} {'seconds':>8} {'sent/s':>8} {'new tok':>8} {'tok/s':>8} {'vs plain':>9}")
    base = result["rows"]["plain generate"]
    base_tps = base["new_tokens"] / base["seconds"]
    for label, r in result["rows"].items():
        tps = r["new_tokens"] / r["seconds"]
        extra = ""
        if "warmup_seconds" in r:
            path = ("ait's loop, " + (f"{r['graphs']} CUDA graphs" if r["graphs"] else "no graphs")
                    if r.get("own_loop") else "static cache" if r["static_cache"] else "dynamic cache")
            extra = f"   ({path}; warm-up {r['warmup_seconds']:.1f} s)"
        print(f"{label:<28} {r['sentences']:>9} {r['seconds']:>8.2f} {r['sentences'] / r['seconds']:>8.1f} "
              f"{r['new_tokens']:>8} {tps:>8,.0f} {tps / base_tps:>8.2f}x{extra}")
    for label, check in result["checks"].items():
        verdict = "PASS" if agreement_met(check, result["sentences"]) else "FAIL"
        n = result["sentences"]
        print(f"{label}: identical to HF generate (same batches, dynamic cache): {check['identical']}/{n}; "
              f"HF generate vs itself (two batchings): {check['generate_self_agreement']}/{n}; {verdict}. "
              f"Agreement with the plain rows (other batches and padding, up to the shorter row): "
              f"{check['plain_prefix_agreement']}/{n}")


def run_comet(comet_model: str, srcs, hyps, refs, batch_size) -> dict:
    """ait's COMET scorer (length-sorted batches of `batch_size`, auto: the largest that fits) and, where
    unbabel-comet is installed, comet's own `predict` at its default batch of 16, on the same segments; each
    timed after a warm-up."""
    from aligninstruct_cli.metrics.comet import COMET, DEFAULT_COMET_BATCH_SIZE

    ours = COMET(comet_model, batch_size=batch_size)
    ours.segment_scores(srcs[:16], hyps[:16], refs[:16])  # warm-up (and auto's batch search)
    start = time.perf_counter()
    our_scores = ours.segment_scores(srcs, hyps, refs)
    figures = {"segments": len(hyps), "seconds": time.perf_counter() - start, "batch_size": ours.batch_size,
               "implementation": ours.implementation}
    if importlib.util.find_spec("comet") is None:
        return figures
    theirs = COMET(comet_model, batch_size=DEFAULT_COMET_BATCH_SIZE, implementation="unbabel-comet")
    theirs.segment_scores(srcs[:16], hyps[:16], refs[:16])
    start = time.perf_counter()
    their_scores = theirs.segment_scores(srcs, hyps, refs)
    figures["comet_predict_seconds"] = time.perf_counter() - start
    figures["max_abs_diff_x100"] = max(abs(a - b) for a, b in zip(our_scores, their_scores))
    return figures


def large_random_comet(workdir: Path, texts: list[str]) -> str:
    """A random-weight COMET of wmt22-comet-da's shape (XLM-R large: 24 layers, hidden 1024, 250,002 tokens;
    estimator 3072, 1024) over a tokenizer trained on `texts` (the vocabulary is padded to XLM-R's size); one
    already in `workdir` is reused (gpu_check.sh scores it in two environments)."""
    from transformers import XLMRobertaConfig

    from aligninstruct_cli.metrics.comet_model import build_random_comet
    from aligninstruct_cli.tiny import build_tiny_comet

    if (workdir / "comet-large" / "hparams.yaml").is_file():
        return str(workdir / "comet-large")
    toy = build_tiny_comet(workdir / "comet-toy", texts=texts).parents[1]
    encoder = toy / "encoder"
    XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                     eos_token_id=2, type_vocab_size=1).save_pretrained(encoder)
    return str(build_random_comet(workdir / "comet-large", encoder, hidden_sizes=(3072, 1024)).parents[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model id or directory")
    parser.add_argument("--preset", help=f"comma-separated random BLOOM shapes ({', '.join(PRESETS)}), built on the "
                                         "device, instead of --model")
    parser.add_argument("--adapter")
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--cache", default="auto", choices=("auto", "static", "dynamic"),
                        help="ait's KV cache (as `ait translate --cache`)")
    parser.add_argument("--compile-backend", default="inductor",
                        help="comma-separated: how transformers compiles the static-cache decoding step: inductor (its "
                             "default, ait's), exact (inductor emulating eager's bf16 rounding); a row each")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", "--dtype", default="auto", help="auto|bf16|fp16|fp32 (as ait translate)")
    parser.add_argument("--one-by-one", type=int, default=0, help="also time ait at batch size 1 on this many sentences")
    parser.add_argument("--hf-static", action="store_true",
                        help="also time the engine through transformers' static path (generate with "
                             "cache_implementation=static, compiled by --compile-backend)")
    parser.add_argument("--comet-model", help="COMET model (default: a tiny COMET built on the spot)")
    parser.add_argument("--comet-shape", default="toy", choices=("toy", "large"),
                        help="without --comet-model: the toy COMET, or a random-weight one of wmt22-comet-da's "
                             "shape (XLM-R large)")
    parser.add_argument("--comet-batch-size", default="auto", help="a number, or auto (as `ait score`)")
    parser.add_argument("--comet-segments", type=int, default=None, help="default: --sentences; 0 skips COMET")
    parser.add_argument("--comet-dir", help="where --comet-shape large builds its checkpoint, or finds it built "
                                            "(default: a temporary directory)")
    parser.add_argument("--comet-only", action="store_true", help="skip generation: only the COMET figures")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    unknown = [b for b in args.compile_backend.split(",") if b not in BACKENDS]
    if unknown:
        parser.error(f"--compile-backend: unknown {', '.join(unknown)} (choose from {', '.join(BACKENDS)})")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from aligninstruct_cli.generation import resolve_prompt
    from aligninstruct_cli.models import load_model, pick_device, precision_option, resolve_precision

    workdir = Path(tempfile.mkdtemp(prefix="ait-bench-"))
    en, kk = sources(args.sentences)
    prompts = [resolve_prompt("default").render("en", "kk", s) for s in en]
    device = pick_device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    import transformers

    figures: dict = {"device": device_name, "transformers": transformers.__version__, "models": {}}
    failed = False
    if args.comet_only:
        pass
    elif args.preset:
        from aligninstruct_cli.tiny import train_tokenizer

        tokenizer = train_tokenizer(en + kk, workdir / "tok", vocab_size=8000)
        tokenizer.padding_side = "left"
        precision = resolve_precision(precision_option(args.precision), device.type)
        for preset in args.preset.split(","):
            loaded = random_bloom(preset, tokenizer, device, precision)
            result = bench_model(loaded, prompts, args)
            print_model(loaded.model_id, result, device_name, precision, args)
            failed |= not all_agree(result)
            figures["models"][preset] = result
            del loaded
            torch._dynamo.reset()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    else:
        model_id = args.model or tiny_model(workdir)
        loaded = load_model(model_id, args.adapter, device=args.device, precision=precision_option(args.precision))
        result = bench_model(loaded, prompts, args)
        print_model(model_id, result, device_name, loaded.precision, args)
        failed |= not all_agree(result)
        figures["models"][model_id] = result

    n_comet = len(en) if args.comet_segments is None else args.comet_segments
    if n_comet:
        from aligninstruct_cli.tiny import build_tiny_comet

        comet_dir = Path(args.comet_dir) if args.comet_dir else workdir
        comet_model = args.comet_model or (large_random_comet(comet_dir, en + kk) if args.comet_shape == "large" else
                                           str(build_tiny_comet(workdir / "comet", texts=en + kk).parents[1]))
        hyps = (kk * (n_comet // max(1, len(kk)) + 1))[:n_comet]
        srcs = (en * (n_comet // max(1, len(en)) + 1))[:n_comet]
        refs = hyps[1:] + hyps[:1]
        comet = run_comet(comet_model, srcs, hyps, refs, args.comet_batch_size)
        line = (f"\nCOMET {args.comet_model or args.comet_shape + ' (random weights)'} on {device_name}, "
                f"{comet['segments']} segments: ait (batch {args.comet_batch_size} → {comet['batch_size']}) "
                f"{comet['segments'] / comet['seconds']:.1f} segments/s")
        if "comet_predict_seconds" in comet:
            line += (f"; comet predict (batch 16) {comet['segments'] / comet['comet_predict_seconds']:.1f} "
                     f"segments/s; largest score difference (×100) {comet['max_abs_diff_x100']:.2e}")
        else:
            line += "; comet predict: skipped (unbabel-comet is not installed here)"
        print(line)
        figures["comet"] = comet
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
