"""The demo's report (`DIR/report.md`): what each stage learned, the paper-style table with
significance, the probe's Δ1/Δ2, and the files behind every figure."""

from __future__ import annotations

from pathlib import Path

import orjson

from aligninstruct_cli.errors import AitError

SYSTEMS = ("untrained", "MTInstruct", "MT+Align")


def _load(path: Path):
    if not path.exists():
        raise AitError(f"{path}: missing; run the whole demo first (`ait demo run`)")
    return orjson.loads(path.read_bytes())


def _last_losses(run_dir: Path) -> tuple[float | None, float | None]:
    """(first, last) logged training loss of a run's metrics.jsonl."""
    losses = [rec["loss"] for line in (run_dir / "metrics.jsonl").read_bytes().splitlines()
              if line.strip() and "loss" in (rec := orjson.loads(line))]
    return (losses[0], losses[-1]) if losses else (None, None)


def learning_verdict(scores: dict) -> tuple[bool, list[str]]:
    """Did both trained systems beat the untrained model on BLEU and chrF++ in every group?"""
    by_name = {s["name"]: s for s in scores["systems"]}
    lines, ok = [], True
    for group in scores["groups"]:
        key = group["key"]
        for metric in ("bleu", "chrf"):
            base = by_name["untrained"]["groups"][key][metric]["score"]
            for name in ("MTInstruct", "MT+Align"):
                trained = by_name[name]["groups"][key][metric]["score"]
                ok &= trained > base
                lines.append(f"| {key} | {'BLEU' if metric == 'bleu' else 'chrF++'} | {base:.2f} | {name} | "
                             f"{trained:.2f} | {trained - base:+.2f} |")
    return ok, lines


def significance_lines(scores: dict) -> list[str]:
    system = next(s for s in scores["systems"] if s["name"] == "MT+Align")
    lines = []
    for key, metrics in system["significance"]["groups"].items():
        for metric, sig in metrics.items():
            low, high = sig["ci95"]
            verdict = ("**MT+Align better**" if sig["better"] else
                       "MTInstruct better" if sig["significant"] else "no significant difference")
            lines.append(f"| {key} | {metric} | {sig['baseline']:.2f} | {sig['system']:.2f} | {sig['diff']:+.2f} "
                         f"| [{low:+.2f}, {high:+.2f}] | {sig['p']:.3f} | {verdict} |")
    return lines


def write_report(directory: str | Path) -> tuple[Path, str]:
    out = Path(directory)
    scores = _load(out / "scores.json")
    table = (out / "scores.md").read_text(encoding="utf-8") if (out / "scores.md").exists() else ""
    probe = _load(out / "probe" / "compare.json")
    learned, verdict_rows = learning_verdict(scores)
    losses = {name: _last_losses(out / "runs" / run) for name, run in
              (("base", "base"), ("MTInstruct", "mt"), ("MT+Align", "mt+align"))}

    def loss_text(name: str) -> str:
        first, last = losses[name]
        return "no loss logged" if first is None else f"training loss {first:.3f} → {last:.3f}"

    summary = ("trained > untrained on BLEU and chrF++ in every group: " + ("YES" if learned else "NO"))
    md = [
        "# ait demo report",
        "",
        "Everything here was made by `ait demo run` from generated toy data: English, Sunlandic (`qaa`, "
        "the language the demo's base model was trained on) and Moonlandic (`qab`, unseen by the base model). "
        "The commands are in `aligninstruct_cli/demo/demo.sh` (shown in docs/demo.md).",
        "",
        "## Which stage learned what",
        "",
        f"1. **Base model** (`runs/base`, full training from random weights on English↔Sunlandic "
        f"MTInstruct): learned English, Sunlandic and the instruction format; {loss_text('base')}. "
        "This plays BLOOMZ: it has never seen Moonlandic (its tokenizer was trained without it, too).",
        f"2. **MTInstruct** (`runs/mt`, LoRA on the base, Moonlandic MTInstruct records): {loss_text('MTInstruct')}.",
        f"3. **MT+Align** (`runs/mt+align`, LoRA on the base, MTInstruct + AlignInstruct records built from "
        f"`ait align`'s word alignments): {loss_text('MT+Align')}.",
        "",
        "The untrained row is the base model without any adapter, prompted the same way.",
        "",
        f"## Trained vs untrained: {summary}",
        "",
        "| group | metric | untrained | system | score | Δ |",
        "|---|---|---:|---|---:|---:|",
        *verdict_rows,
        "",
        "## MTInstruct vs MT+Align (the paper's Table 1 layout)",
        "",
        table.strip(),
        "",
        "### Paired bootstrap: MT+Align − MTInstruct, per group",
        "",
        "| group | metric | MTInstruct | MT+Align | Δ | 95% CI | p | verdict |",
        "|---|---|---:|---:|---:|---|---:|---|",
        *significance_lines(scores),
        "",
        "COMET here comes from a tiny, randomly initialised checkpoint built locally (`comet/`): it is **not** "
        "`Unbabel/wmt22-comet-da` (which needs the hub), so its numbers only show that the COMET plumbing "
        "runs; read BLEU and chrF++.",
        "",
        "## Probe: English/Moonlandic cosine similarity per layer",
        "",
        "| layer | " + " | ".join(run["label"] for run in probe["runs"]) + " | "
        + " | ".join(d["name"] for d in probe["deltas"]) + " |",
        "|---|" + "---:|" * (len(probe["runs"]) + len(probe["deltas"])),
    ]
    for i, layer in enumerate(probe["layers"]):
        cells = [f"{run['cosine'][i]:.4f}" for run in probe["runs"]] + [f"{d['delta'][i]:+.4f}" for d in probe["deltas"]]
        md.append(f"| {layer} | " + " | ".join(cells) + " |")
    md += ["", "Δ1 = MTInstruct − base, Δ2 = MT+Align − MTInstruct (the paper's Sec. 4.5).", "",
           "![probe](probe.png)", "",
           "## Files", "",
           "- `data/`: the toy corpora; `unseen-aligned.jsonl`: `ait align` output; `mt.jsonl`, `align.jsonl`: "
           "instruction records",
           "- `runs/<name>/`: `run.json` (every hyperparameter, versions, input hashes), `metrics.jsonl`, "
           "`final/` (a PEFT adapter; the base run's is a full model)",
           "- `hyps/`: translations; `scores.json`, `scores.md`: `ait score` output; `probe/`: `ait probe` output",
           ""]
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path, summary
