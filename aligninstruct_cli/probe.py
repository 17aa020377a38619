"""Layer-wise similarity of parallel sentences (the paper's Sec. 4.5 probe), deltas between runs, plots.

For each pair, both sentences are encoded on their own (no prompt, the tokenizer's own special tokens,
truncated to `max_length` tokens; a sentence longer than `max_length` tokens could span, `io.char_budget`,
is first cut to that many characters, so a huge line is never tokenized whole). Each layer's hidden states are mean-pooled over the real tokens
(padding masked out) into a sentence embedding; the cosine similarity of the two embeddings is averaged
over all pairs, per layer. Layer 0 is the embedding output, layer i the output of block i; the last one is
what transformers returns as the final hidden state (for BLOOM: after the final layer norm).

`compare_runs` gives the per-layer difference between consecutive runs: run 2 − run 1 (Δ1), run 3 − run 2
(Δ2), ... as the paper's Δ1 (base → MTInstruct) and Δ2 (MTInstruct → MT+Align).

Uncertainty: a mean over a few hundred pairs moves with the pairs drawn, and runs often differ by less than
that. Each layer's mean gets a 95% percentile bootstrap interval over sentence pairs (`bootstrap_samples`
resamples, seeded). A result keeps every pair's per-layer cosine (`per_pair`: float32, base64) and a hash of
the pairs, so that a Δ between two runs on the same pairs gets a PAIRED bootstrap interval (the same
resampled pairs on both sides); runs on different pairs get independent resamples. A Δ whose interval
includes 0 is marked as such in the JSON (`includes_zero`), the plot (hollow markers) and the terminal
(dimmed). The terminal's bars use fixed scales (cosine 0..1, Δ ±`DELTA_SCALE`), so a tiny difference draws
as a tiny bar.

Memory: the per-pair cosines (4 bytes × layers × pairs) and sums per direction; pairs stream in batches."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence

from rich.table import Table

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import ReadOptions, atomic_path, char_budget
from aligninstruct_cli.languages import get_language
from aligninstruct_cli.models import MODEL_PANEL, PRECISIONS, ModelOptions, precision_field
from aligninstruct_cli.options import check_options, option

POOLING = "mean over non-padding tokens of each layer's hidden states"
CI_LEVEL = 0.95
DELTA_SCALE = 0.1  # the terminal's Δ bars span ±this much cosine
PER_PAIR_ENCODING = "base64 of float32 little-endian, row-major [n_pairs, n_layers]"


@dataclass(kw_only=True)
class SimilarityOptions:
    """How `layer_similarity` encodes the sentences (defaults: ait's choice; the paper gives none)."""

    batch_size: int = option(16, min=1, help="Sentences per forward pass.")
    max_length: int = option(256, min=1, help="Truncate each sentence to this many tokens.")
    bootstrap_samples: int = option(1000, min=0, help="Bootstrap resamples of the sentence pairs for each layer's "
                                    "95% interval (0: none).",
                                    details="Percentile intervals; --compare reuses them for paired intervals of "
                                            "each Δ. 1000 as sacrebleu's bootstrap.")
    seed: int = option(0, help="Seed of the bootstrap resamples; the same seed gives the same intervals.")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(kw_only=True)
class ProbeOptions(ReadOptions, ModelOptions, SimilarityOptions):
    """The options of `ait probe` (the model's are `ModelOptions`', the input's `ReadOptions`'). `model` may
    be left out only to compare results (`--compare`, which the command checks)."""

    model: Optional[str] = option(None, flags=("--model", "-m"), panel=MODEL_PANEL,
                                  help="Base model: a hub id or a local directory (not with --compare).",
                                  details="Required unless --compare.")
    precision: Literal[PRECISIONS] = precision_field(  # type: ignore[valid-type]
        "fp32", help="Precision of the weights; fp32 by default (ait's choice: the similarities compared are small "
                     "differences). auto: bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU.")
    label: Optional[str] = option(None, help="Name of this run in comparisons and plots (default: the adapter's or "
                                  "model's directory name).")
    limit: Optional[int] = option(None, min=1, metavar="N", help="Probe only the first N pairs.")

    def __post_init__(self) -> None:
        check_options(self)


def _batches(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def mean_pooled_layers(model, tokenizer, texts: Sequence[str], device, max_length: int):
    """(n_layers + 1, len(texts), hidden) float32 tensor: each layer's mean over the real tokens."""
    import torch  # lazy: torch

    budget = char_budget(max_length)  # a huge line is cut before tokenizing: the same first tokens, bounded memory
    enc = tokenizer([t[:budget] for t in texts], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].unsqueeze(-1).to(torch.float32)  # (B, T, 1)
    counts = mask.sum(dim=1).clamp(min=1.0)  # (B, 1)
    return torch.stack([(h.to(torch.float32) * mask).sum(dim=1) / counts for h in out.hidden_states])


def layer_similarity(model, tokenizer, pairs: Iterable[dict], options: SimilarityOptions | None = None, *,
                     device="cpu", on_batch: Callable[[int], None] | None = None, **fields: Any) -> dict[str, Any]:
    """Mean cosine similarity per layer over `pairs` (records with src, tgt, src_lang, tgt_lang).

    `options` (a `ProbeOptions` will do) with `fields` replaced, e.g. `batch_size=8`; the dataclass checks
    them."""
    import torch  # lazy: torch

    options = options or SimilarityOptions()
    if fields:
        options = replace(options, **fields)
    import numpy as np  # lazy: numpy

    total: torch.Tensor | None = None
    by_direction: dict[str, list] = {}  # key -> [count, sums]
    per_pair: list[np.ndarray] = []  # (B, L+1) float32 per batch
    digest = hashlib.sha256()
    n = 0
    for batch in _batches(pairs, options.batch_size):
        src = mean_pooled_layers(model, tokenizer, [p["src"] for p in batch], device, options.max_length)
        tgt = mean_pooled_layers(model, tokenizer, [p["tgt"] for p in batch], device, options.max_length)
        cos = torch.nn.functional.cosine_similarity(src, tgt, dim=-1).to(torch.float64).cpu()  # (L+1, B)
        per_pair.append(cos.T.numpy().astype(np.float32))
        for p in batch:
            digest.update(f"{p['src']}\t{p['tgt']}\n".encode("utf-8"))
        total = cos.sum(dim=1) if total is None else total + cos.sum(dim=1)
        for j, pair in enumerate(batch):
            key = f"{get_language(pair['src_lang']).code}-{get_language(pair['tgt_lang']).code}"
            slot = by_direction.setdefault(key, [0, torch.zeros_like(cos[:, 0])])
            slot[0] += 1
            slot[1] += cos[:, j]
        n += len(batch)
        if on_batch:
            on_batch(len(batch))
    if n == 0 or total is None:
        raise AitError("no sentence pairs to probe")
    values = np.concatenate(per_pair)
    result: dict[str, Any] = {
        "n_pairs": n,
        "pooling": POOLING,
        "max_length": options.max_length,
        "layers": list(range(len(total))),
        "cosine": (total / n).tolist(),
        "by_direction": {k: {"n": c, "cosine": (s / c).tolist()} for k, (c, s) in sorted(by_direction.items())},
    }
    if options.bootstrap_samples:
        means = bootstrap_means(values, options.bootstrap_samples, options.seed)
        result["ci95"] = percentile_interval(means)
        result["bootstrap"] = bootstrap_record(options.bootstrap_samples, options.seed)
    result["pairs_sha256"] = digest.hexdigest()
    result["per_pair"] = encode_per_pair(values)
    return result


# ------------------------------------------------------------------------------------------------ intervals
def bootstrap_record(samples: int, seed: int) -> dict[str, Any]:
    return {"samples": samples, "seed": seed, "level": CI_LEVEL, "unit": "sentence pair", "method": "percentile"}


def resample_counts(n: int, samples: int, seed: int, chunk: int = 256):
    """Blocks of (k, n) counts: how often each of n pairs is drawn in each of `samples` resamples (with
    replacement), in order; the same (n, samples, seed) gives the same resamples."""
    import numpy as np  # lazy: numpy

    rng = np.random.default_rng([seed, n])
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        counts = np.zeros((k, n), dtype=np.float64)
        for row in range(k):
            counts[row] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        yield counts


def bootstrap_means(values, samples: int, seed: int):
    """(samples, L) per-layer means of `values` (n, L) over bootstrap resamples of its rows."""
    import numpy as np  # lazy: numpy

    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return np.concatenate([counts @ values / n for counts in resample_counts(n, samples, seed)])


def percentile_interval(means, level: float = CI_LEVEL) -> list[list[float]]:
    """Per layer [low, high]: the percentile interval of bootstrap means (samples, L)."""
    import numpy as np  # lazy: numpy

    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return [[float(a), float(b)] for a, b in zip(low, high)]


def encode_per_pair(values) -> dict[str, Any]:
    import numpy as np  # lazy: numpy

    array = np.ascontiguousarray(values, dtype="<f4")
    return {"shape": list(array.shape), "encoding": PER_PAIR_ENCODING,
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_per_pair(entry: Any):
    """The (n_pairs, n_layers) float32 array of a result's `per_pair`, or None when it has none."""
    import numpy as np  # lazy: numpy

    if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
        return None
    try:
        shape = tuple(int(v) for v in entry["shape"])
        return np.frombuffer(base64.b64decode(entry["data"]), dtype="<f4").reshape(shape)
    except (ValueError, TypeError, KeyError):
        return None


def delta_interval(a: dict, b: dict, samples: int, seed: int) -> dict[str, Any] | None:
    """The bootstrap interval of b − a per layer: paired (the same resampled pairs on both sides) when both
    runs probed the same pairs, else independent resamples of each; None without per-pair values."""
    import numpy as np  # lazy: numpy

    va, vb = decode_per_pair(a.get("per_pair")), decode_per_pair(b.get("per_pair"))
    if va is None or vb is None or not samples or va.shape[1] != vb.shape[1]:
        return None
    paired = (a.get("pairs_sha256") is not None and a.get("pairs_sha256") == b.get("pairs_sha256")
              and va.shape == vb.shape)
    if paired:
        means = bootstrap_means(vb.astype(np.float64) - va, samples, seed)
    else:
        means = bootstrap_means(vb, samples, seed + 1) - bootstrap_means(va, samples, seed)
    interval = percentile_interval(means)
    return {"ci95": interval, "includes_zero": [low <= 0.0 <= high for low, high in interval], "paired": paired}


def probe(loaded, pairs: Iterable[dict], options: SimilarityOptions | None = None, **kwargs) -> dict[str, Any]:
    """`layer_similarity` for a loaded model (`models.load_model`), with the run's provenance."""
    result = layer_similarity(loaded.model, loaded.tokenizer, pairs, options, device=loaded.device, **kwargs)
    return {"model": loaded.model_id, "adapter": loaded.adapter, **result}


# ------------------------------------------------------------------------------------------------ compare
def run_label(run: dict, path: str | None = None) -> str:
    if run.get("label"):
        return str(run["label"])
    if run.get("adapter"):
        return Path(str(run["adapter"]).rstrip("/")).name
    return Path(str(run.get("model", path or "run")).rstrip("/")).name


def _check_run(run: Any, path: str) -> dict:
    if not isinstance(run, dict) or not isinstance(run.get("cosine"), list) or not run["cosine"] or not all(
            isinstance(v, (int, float)) for v in run["cosine"]):
        raise AitError(f"{path}: not an `ait probe` result (no per-layer 'cosine' list)")
    return run


def compare_runs(runs: Sequence[dict], paths: Sequence[str], *, bootstrap_samples: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
    """Per-layer Δ between consecutive runs (Δ1 = run 2 − run 1, Δ2 = run 3 − run 2, ...), each with its
    bootstrap interval where the runs kept their per-pair values (see `delta_interval`)."""
    if len(runs) < 2:
        raise AitError("a comparison needs at least two probe results (RUN_A.json RUN_B.json ...)")
    runs = [_check_run(r, p) for r, p in zip(runs, paths)]
    n_layers = {len(r["cosine"]) for r in runs}
    if len(n_layers) != 1:
        sizes = ", ".join(f"{p}: {len(r['cosine'])}" for r, p in zip(runs, paths))
        raise AitError(f"the runs to compare have different numbers of layers ({sizes})",
                       hint="compare runs of the same base model")
    deltas = []
    for k in range(1, len(runs)):
        a, b = runs[k - 1], runs[k]
        delta = {"name": f"Δ{k}", "from": run_label(a, paths[k - 1]), "to": run_label(b, paths[k]),
                 "delta": [y - x for x, y in zip(a["cosine"], b["cosine"])]}
        delta.update(delta_interval(a, b, bootstrap_samples, seed) or {})
        deltas.append(delta)
    out = {
        "layers": list(range(len(runs[0]["cosine"]))),
        "runs": [{"path": p, "label": run_label(r, p), "model": r.get("model"), "adapter": r.get("adapter"),
                  "n_pairs": r.get("n_pairs"), "cosine": r["cosine"],
                  **({"ci95": r["ci95"]} if "ci95" in r else {})} for r, p in zip(runs, paths)],
        "deltas": deltas,
    }
    if any("ci95" in d for d in deltas):
        out["bootstrap"] = bootstrap_record(bootstrap_samples, seed)
    return out


# ------------------------------------------------------------------------------------------------ output
def plot(result: dict, path: str | Path) -> None:
    """A PNG line plot: cosine per layer (one line per run); with deltas, a second panel of the Δs."""
    try:
        import matplotlib  # lazy: matplotlib (optional)
    except ImportError:
        raise AitError("plotting needs matplotlib", hint="pip install 'aligninstruct-cli[plot]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib (optional)
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib (optional)

    runs = result["runs"] if "runs" in result else [{"label": run_label(result), "cosine": result["cosine"],
                                                     **({"ci95": result["ci95"]} if "ci95" in result else {})}]
    deltas = result.get("deltas", [])
    fig, axes = plt.subplots(2 if deltas else 1, 1, figsize=(7, 6.5 if deltas else 4), squeeze=False)
    top = axes[0][0]
    for run in runs:
        layers = range(len(run["cosine"]))
        line, = top.plot(layers, run["cosine"], marker="o", markersize=3, label=run["label"])
        if run.get("ci95"):
            top.fill_between(layers, [c[0] for c in run["ci95"]], [c[1] for c in run["ci95"]],
                             color=line.get_color(), alpha=0.2, linewidth=0)
    _min_span(top, [v for run in runs for v in run["cosine"]], 0.1)
    top.set_xlabel("layer")
    top.set_ylabel("mean cosine similarity")
    top.set_title("Cross-lingual similarity per layer (mean-pooled)"
                  + ("\nbands: 95% bootstrap intervals over sentence pairs" if any(run.get("ci95") for run in runs)
                     else ""), fontsize=10)
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    if deltas:
        bottom = axes[1][0]
        for d in deltas:
            layers = list(range(len(d["delta"])))
            label = f"{d['name']}: {d['from']} → {d['to']}"
            if d.get("ci95"):
                low = [max(v - c[0], 0.0) for v, c in zip(d["delta"], d["ci95"])]  # ≥ 0: rounding
                high = [max(c[1] - v, 0.0) for v, c in zip(d["delta"], d["ci95"])]
                bars = bottom.errorbar(layers, d["delta"], yerr=[low, high], capsize=2, markersize=0, label=label)
                color = bars[0].get_color()
                zero = d.get("includes_zero") or [False] * len(layers)
                bottom.scatter([x for x, z in zip(layers, zero) if not z], [v for v, z in zip(d["delta"], zero) if not z],
                               color=color, s=16, zorder=3)
                bottom.scatter([x for x, z in zip(layers, zero) if z], [v for v, z in zip(d["delta"], zero) if z],
                               facecolors="white", edgecolors=color, s=16, zorder=3)
            else:
                bottom.plot(layers, d["delta"], marker="o", markersize=3, label=label)
        bottom.axhline(0.0, color="black", linewidth=0.8)
        _min_span(bottom, [0.0] + [v for d in deltas for v in d["delta"]], 0.02)
        bottom.set_xlabel("layer")
        bottom.set_ylabel("Δ cosine" + (" (hollow: 95% CI includes 0)" if any(d.get("ci95") for d in deltas) else ""))
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=8)
    for row in axes:
        row[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _min_span(axis, values: Sequence[float], span: float) -> None:
    """At least `span` of the y axis around `values`, so that noise-sized differences look noise-sized."""
    low, high = axis.get_ylim()
    middle = (min(values) + max(values)) / 2
    if high - low < span:
        axis.set_ylim(middle - span / 2, middle + span / 2)


def _bar(value: float, low: float = 0.0, high: float = 1.0, width: int = 24) -> str:
    """A bar of `value` on the FIXED scale low..high (clipped at both ends)."""
    share = min(max((value - low) / (high - low), 0.0), 1.0)
    filled = round(share * width)
    return "█" * filled + "·" * (width - filled)


def _delta_bar(value: float, scale: float = DELTA_SCALE, half: int = 8) -> str:
    """A bar from the centre: left for a negative Δ, right for a positive one, ±`scale` at the ends."""
    filled = min(round(abs(value) / scale * half), half)
    left = "·" * (half - filled) + "█" * filled if value < 0 else "·" * half
    right = "█" * filled + "·" * (half - filled) if value > 0 else "·" * half
    return f"{left}│{right}"


def _interval(ci: Sequence[float] | None) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def render_terminal(result: dict):
    """A rich Table: one row per layer with its value, 95% interval and a bar on a fixed scale (cosine 0..1;
    Δ ±DELTA_SCALE); a Δ whose interval includes 0 is dimmed."""
    table = Table(title="ait probe: mean cosine per layer", title_justify="left")
    table.add_column("layer", justify="right")
    if "runs" not in result:
        values = result["cosine"]
        intervals = result.get("ci95")
        table.add_column("cosine", justify="right")
        if intervals:
            table.add_column("95% CI", justify="right")
        table.add_column("0 … 1")
        for layer, v in enumerate(values):
            table.add_row(str(layer), f"{v:.4f}", *([_interval(intervals[layer])] if intervals else []), _bar(v))
        return table
    for run in result["runs"]:
        table.add_column(run["label"], justify="right")
    for d in result["deltas"]:
        table.add_column(d["name"], justify="right")
    last = result["deltas"][-1]
    if last.get("ci95"):
        table.add_column(f"{last['name']} 95% CI", justify="right")
        table.caption = "dim Δ: its 95% interval includes 0 (no evidence of a change)"
        table.caption_justify = "left"
    table.add_column(f"{last['name']} (−{DELTA_SCALE:g} … +{DELTA_SCALE:g})")
    for layer in result["layers"]:
        row = [str(layer)] + [f"{run['cosine'][layer]:.4f}" for run in result["runs"]]
        for d in result["deltas"]:
            text = f"{d['delta'][layer]:+.4f}"
            row.append(f"[dim]{text}[/dim]" if (d.get("includes_zero") or [False] * (layer + 1))[layer] else text)
        if last.get("ci95"):
            row.append(_interval(last["ci95"][layer]))
        row.append(_delta_bar(last["delta"][layer]))
        table.add_row(*row)
    return table
