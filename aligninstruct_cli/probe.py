"""Layer-wise similarity of parallel sentences (the paper's Sec. 4.5 probe), deltas between runs, plots.

For each pair, both sentences are encoded on their own (no prompt, the tokenizer's own special tokens,
truncated to `max_length` tokens). Each layer's hidden states are mean-pooled over the real tokens
(padding masked out) into a sentence embedding; the cosine similarity of the two embeddings is averaged
over all pairs, per layer. Layer 0 is the embedding output, layer i the output of block i; the last one is
what transformers returns as the final hidden state (for BLOOM: after the final layer norm).

`compare_runs` gives the per-layer difference between consecutive runs: run 2 − run 1 (Δ1), run 3 − run 2
(Δ2), ... as the paper's Δ1 (base → MTInstruct) and Δ2 (MTInstruct → MT+Align).

Memory: sums per layer and direction only; pairs stream in batches."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import ReadOptions
from aligninstruct_cli.languages import get_language
from aligninstruct_cli.models import MODEL_PANEL, PRECISIONS, ModelOptions, precision_field
from aligninstruct_cli.options import check_options, option

POOLING = "mean over non-padding tokens of each layer's hidden states"


@dataclass(kw_only=True)
class SimilarityOptions:
    """How `layer_similarity` encodes the sentences (defaults: ait's choice; the paper gives none)."""

    batch_size: int = option(16, min=1, help="Sentences per forward pass.")
    max_length: int = option(256, min=1, help="Truncate each sentence to this many tokens.")

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
    import torch

    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
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
    import torch

    options = options or SimilarityOptions()
    if fields:
        options = replace(options, **fields)
    total: torch.Tensor | None = None
    by_direction: dict[str, list] = {}  # key -> [count, sums]
    n = 0
    for batch in _batches(pairs, options.batch_size):
        src = mean_pooled_layers(model, tokenizer, [p["src"] for p in batch], device, options.max_length)
        tgt = mean_pooled_layers(model, tokenizer, [p["tgt"] for p in batch], device, options.max_length)
        cos = torch.nn.functional.cosine_similarity(src, tgt, dim=-1).to(torch.float64).cpu()  # (L+1, B)
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
    return {
        "n_pairs": n,
        "pooling": POOLING,
        "max_length": options.max_length,
        "layers": list(range(len(total))),
        "cosine": (total / n).tolist(),
        "by_direction": {k: {"n": c, "cosine": (s / c).tolist()} for k, (c, s) in sorted(by_direction.items())},
    }


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


def compare_runs(runs: Sequence[dict], paths: Sequence[str]) -> dict[str, Any]:
    """Per-layer Δ between consecutive runs (Δ1 = run 2 − run 1, Δ2 = run 3 − run 2, ...)."""
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
        deltas.append({"name": f"Δ{k}", "from": run_label(a, paths[k - 1]), "to": run_label(b, paths[k]),
                       "delta": [y - x for x, y in zip(a["cosine"], b["cosine"])]})
    return {
        "layers": list(range(len(runs[0]["cosine"]))),
        "runs": [{"path": p, "label": run_label(r, p), "model": r.get("model"), "adapter": r.get("adapter"),
                  "n_pairs": r.get("n_pairs"), "cosine": r["cosine"]} for r, p in zip(runs, paths)],
        "deltas": deltas,
    }


# ------------------------------------------------------------------------------------------------ output
def plot(result: dict, path: str | Path) -> None:
    """A PNG line plot: cosine per layer (one line per run); with deltas, a second panel of the Δs."""
    try:
        import matplotlib
    except ImportError:
        raise AitError("plotting needs matplotlib", hint="pip install 'aligninstruct-cli[plot]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from aligninstruct_cli.io import atomic_path

    runs = result["runs"] if "runs" in result else [{"label": run_label(result), "cosine": result["cosine"]}]
    deltas = result.get("deltas", [])
    fig, axes = plt.subplots(2 if deltas else 1, 1, figsize=(7, 6.5 if deltas else 4), squeeze=False)
    top = axes[0][0]
    for run in runs:
        top.plot(range(len(run["cosine"])), run["cosine"], marker="o", markersize=3, label=run["label"])
    top.set_xlabel("layer")
    top.set_ylabel("mean cosine similarity")
    top.set_title("Cross-lingual similarity per layer (mean-pooled hidden states)")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    if deltas:
        bottom = axes[1][0]
        for d in deltas:
            bottom.plot(range(len(d["delta"])), d["delta"], marker="o", markersize=3,
                        label=f"{d['name']}: {d['from']} → {d['to']}")
        bottom.axhline(0.0, color="black", linewidth=0.8)
        bottom.set_xlabel("layer")
        bottom.set_ylabel("Δ cosine")
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=8)
    for row in axes:
        row[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _bar(value: float, low: float, high: float, width: int = 24) -> str:
    span = high - low
    filled = 0 if span <= 0 else round((value - low) / span * width)
    return "█" * filled + "·" * (width - filled)


def render_terminal(result: dict):
    """A rich Table: one row per layer, values and bars scaled to the observed range."""
    from rich.table import Table

    table = Table(title="ait probe: mean cosine per layer", title_justify="left")
    table.add_column("layer", justify="right")
    if "runs" not in result:
        values = result["cosine"]
        low, high = min(values), max(values)
        table.add_column("cosine", justify="right")
        table.add_column("")
        for layer, v in enumerate(values):
            table.add_row(str(layer), f"{v:.4f}", _bar(v, low, high))
        return table
    for run in result["runs"]:
        table.add_column(run["label"], justify="right")
    for d in result["deltas"]:
        table.add_column(d["name"], justify="right")
    all_deltas = [v for d in result["deltas"] for v in d["delta"]]
    low, high = min(all_deltas + [0.0]), max(all_deltas + [0.0])
    table.add_column("")  # bar of the last Δ
    for layer in result["layers"]:
        row = [str(layer)] + [f"{run['cosine'][layer]:.4f}" for run in result["runs"]]
        row += [f"{d['delta'][layer]:+.4f}" for d in result["deltas"]]
        row.append(_bar(result["deltas"][-1]["delta"][layer], low, high, 16))
        table.add_row(*row)
    return table
