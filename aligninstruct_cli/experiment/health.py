"""Health checks: does a finished step look like a study that works, or like a broken one that only looks like a
result? Each check reads what the step wrote (a run's metrics.jsonl, a translation's hypotheses and manifest, the
hypotheses of a table's systems) and gives a `Finding` with its number and threshold.

    train      loss not falling       a stage's training loss at its end vs its start (per learning rate)
               loss not finite        a NaN or infinite training or validation loss
               validation loss rising the last epoch's validation loss above the stage's best
    translate  empty hypotheses       share of empty outputs
               stopped at max_new_tokens   share cut by the length limit (the translate manifest's count)
               copying the source     share of outputs equal to their source
               degenerate repetition  share with a unit of 1-4 words (or characters) repeated many times in a row
               one hypothesis for most inputs   share of a direction's inputs that got its most common output
               wrong script           share of outputs mostly in another script than the target language's
    score      identical hypotheses   share of records two of the table's systems translate identically

`ait experiment run` prints a warning for each failed check after its step (`--strict`: the step fails);
`ait experiment report` lists every check in its Health section. The thresholds are `HealthOptions`, the
experiment config's `health:` section (docs/experiment.md)."""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from aligninstruct_cli.experiment.paths import log_path, read_marker
from aligninstruct_cli.io import read_records
from aligninstruct_cli.languages import find_language, use_language_file
from aligninstruct_cli.options import check_options, option

REPEAT_WORDS = 4  # a unit of 1-4 words repeated this many times in a row is degenerate
REPEAT_CHARS = 8  # in an output of one or two words: a unit of 1-4 characters repeated this many times
SCRIPT_MAJORITY = 0.5  # an output is in the wrong script when less than this share of its letters is in the right one


@dataclass
class HealthOptions:
    """The thresholds of the health checks (the experiment config's `health:` section)."""

    min_loss_drop: float = option(0.02, min=0, max=1, help="A stage's training loss must end at least this share "
                                  "below where it started (mean of its first and last tenth of log lines); "
                                  "else: loss not falling.")
    max_val_rise: float = option(0.05, min=0, help="The last epoch's validation loss may be at most this share "
                                 "above the stage's lowest; else: validation loss rising.")
    max_empty: float = option(0.05, min=0, max=1, help="Most share of empty hypotheses.")
    max_at_limit: float = option(0.2, min=0, max=1, help="Most share of hypotheses stopped at max_new_tokens.")
    max_copy: float = option(0.2, min=0, max=1, help="Most share of hypotheses equal to their source.")
    max_repetitive: float = option(0.2, min=0, max=1, help="Most share of hypotheses with degenerate repetition "
                                   f"(1-4 words repeated {REPEAT_WORDS} times in a row, or 1-4 characters "
                                   f"{REPEAT_CHARS} times in an output of one or two words).")
    max_same_hypothesis: float = option(0.5, min=0, max=1, help="Most share of a direction's inputs that get "
                                        "its most common hypothesis.")
    max_wrong_script: float = option(0.2, min=0, max=1, help="Most share of hypotheses whose letters are mostly "
                                     "in another script than the target language's (its FLORES-200 code's "
                                     "script, e.g. kaz_Cyrl: Cyrillic).")
    max_identical: float = option(0.9, min=0, max=1, help="Most share of records two systems of a table may "
                                  "translate identically.")

    def __post_init__(self):
        check_options(self)


@dataclass
class Finding:
    step: str  # the step's name, e.g. train/MTInstruct
    check: str  # e.g. "loss not falling"
    detail: str  # the numbers, e.g. "stage 1 (mt): 7.5012 → 7.4998 (0.0 % lower; at least 2 % expected)"
    value: float | None
    threshold: float | None
    failed: bool

    def line(self) -> str:
        return f"{self.step}: {self.check}: {self.detail}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


# ---------------------------------------------------------------------------------------------- train
def run_stages(run: Path) -> tuple[list[str], list[float]]:
    """(the curriculum's stage names, e.g. ["mt+align", "mt"]; the learning rates) from the run's run.json."""
    manifest = read_marker(run / "run.json") or {}
    curriculum = manifest.get("curriculum") or []
    return (["+".join(s) if isinstance(s, list) else str(s) for s in curriculum], list(manifest.get("lrs") or []))


def check_training(step: str, run: Path, options: HealthOptions) -> list[Finding]:
    """The loss checks over a run's metrics.jsonl, per learning rate and stage."""
    stages, lrs = run_stages(run)
    groups: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(lambda: {"loss": [], "val_loss": []})
    metrics = run / "metrics.jsonl"
    for rec in read_records(str(metrics), "any") if metrics.exists() else ():
        for name in ("loss", "val_loss"):
            if name in rec and (rec[name] is None or isinstance(rec[name], (int, float))):
                # the training writes a NaN or infinite loss as null (orjson)
                value = math.nan if rec[name] is None else float(rec[name])
                groups[(rec.get("lr_index", 0), rec.get("stage", 1))][name].append(value)
    findings: list[Finding] = []
    for (lr_index, stage), values in sorted(groups.items()):
        where = f"stage {stage}" + (f" ({stages[stage - 1]})" if 0 < stage <= len(stages) else "")
        if len(lrs) > 1 and lr_index < len(lrs):
            where = f"lr {lrs[lr_index]:g} {where}"
        losses, val = values["loss"], values["val_loss"]
        bad = [x for x in losses + val if not math.isfinite(x)]
        findings.append(Finding(step, "loss not finite", f"{where}: {len(bad)} of {len(losses) + len(val)} logged "
                                "losses are NaN or infinite", len(bad), 0, bool(bad)))
        losses = [x for x in losses if math.isfinite(x)]
        if len(losses) >= 2:
            window = max(1, len(losses) // 10)
            start, end = sum(losses[:window]) / window, sum(losses[-window:]) / window
            drop = (start - end) / abs(start) if start else 0.0
            findings.append(Finding(step, "loss not falling", f"{where}: {start:.4f} → {end:.4f} over "
                                    f"{len(losses)} log lines ({_pct(drop) + ' lower' if drop >= 0 else _pct(-drop) + ' higher'}; at least "
                                    f"{_pct(options.min_loss_drop)} expected)", drop, options.min_loss_drop,
                                    drop < options.min_loss_drop))
        val = [x for x in val if math.isfinite(x)]
        if len(val) >= 2:
            best = min(val[:-1])
            rise = (val[-1] - best) / abs(best) if best else 0.0
            findings.append(Finding(step, "validation loss rising", f"{where}: last epoch {val[-1]:.4f}, best "
                                    f"earlier {best:.4f} ({_pct(rise) + ' higher' if rise >= 0 else _pct(-rise) + ' lower'}; at most "
                                    f"{_pct(options.max_val_rise)} higher)",
                                    rise, options.max_val_rise, rise > options.max_val_rise))
    return findings


# ---------------------------------------------------------------------------------------------- translate
# FLORES-200 script tags -> the first word(s) of the Unicode character names of that script
SCRIPTS: dict[str, tuple[str, ...]] = {
    "Latn": ("LATIN",), "Cyrl": ("CYRILLIC",), "Arab": ("ARABIC",), "Deva": ("DEVANAGARI",), "Beng": ("BENGALI",),
    "Hans": ("CJK",), "Hant": ("CJK",), "Jpan": ("CJK", "HIRAGANA", "KATAKANA"), "Hang": ("HANGUL",),
    "Kore": ("HANGUL", "CJK"), "Grek": ("GREEK",), "Hebr": ("HEBREW",), "Thai": ("THAI",), "Khmr": ("KHMER",),
    "Ethi": ("ETHIOPIC",), "Geor": ("GEORGIAN",), "Armn": ("ARMENIAN",), "Taml": ("TAMIL",), "Telu": ("TELUGU",),
    "Knda": ("KANNADA",), "Mlym": ("MALAYALAM",), "Gujr": ("GUJARATI",), "Guru": ("GURMUKHI",), "Orya": ("ORIYA",),
    "Sinh": ("SINHALA",), "Mymr": ("MYANMAR",), "Laoo": ("LAO",), "Tibt": ("TIBETAN",), "Tfng": ("TIFINAGH",),
    "Olck": ("OL CHIKI",), "Thaa": ("THAANA",), "Cher": ("CHEROKEE",), "Cans": ("CANADIAN SYLLABICS",),
    "Mong": ("MONGOLIAN",), "Syrc": ("SYRIAC",), "Nkoo": ("NKO",), "Vaii": ("VAI",), "Bopo": ("BOPOMOFO",),
}


def target_script(lang: str) -> str | None:
    """The script tag of a language's FLORES-200 code (kaz_Cyrl → Cyrl; a language file's `flores` column), or
    None when unknown."""
    language = find_language(lang)
    flores = language.flores if language is not None else (lang if "_" in lang else None)
    tag = flores.rsplit("_", 1)[-1] if flores and "_" in flores else None
    return tag if tag in SCRIPTS else None


def script_share(text: str, script: str) -> float | None:
    """The share of `text`'s letters that are in `script` (None: no letters)."""
    prefixes = SCRIPTS[script]
    letters = in_script = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        name = unicodedata.name(ch, "")
        if name.startswith(prefixes):
            in_script += 1
    return in_script / letters if letters else None


def _has_run(units: list, times: int) -> bool:
    """A unit of 1-4 items repeated `times` times in a row."""
    for n in range(1, 5):
        need = n * times
        for i in range(0, len(units) - need + 1):
            unit = units[i:i + n]
            if all(units[i + k * n:i + (k + 1) * n] == unit for k in range(1, times)):
                return True
    return False


def is_repetitive(text: str) -> bool:
    words = text.split()
    if len(words) > 2:
        return _has_run(words, REPEAT_WORDS)
    chars = [c for c in text if not c.isspace()]
    return _has_run(chars, REPEAT_CHARS)


def translation_stats(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts over a translation's records, overall and per direction (src_lang-tgt_lang)."""
    total = Counter()
    per: dict[str, Counter] = defaultdict(Counter)
    hyps: dict[str, Counter] = defaultdict(Counter)
    scripts: dict[str, str | None] = {}
    for rec in records:
        direction = f"{rec.get('src_lang', '?')}-{rec.get('tgt_lang', '?')}"
        hyp = str(rec.get("hyp") or "").strip()
        src = str(rec.get("src") or "").strip()
        counts = per[direction]
        counts["n"] += 1
        counts["empty"] += not hyp
        counts["copy"] += bool(hyp) and hyp == src
        counts["repetitive"] += bool(hyp) and is_repetitive(hyp)
        hyps[direction][hyp] += 1
        tgt = str(rec.get("tgt_lang") or "")
        if tgt not in scripts:
            scripts[tgt] = target_script(tgt) if tgt else None
        if scripts[tgt] and hyp:
            share = script_share(hyp, scripts[tgt])
            if share is not None:
                counts["scripted"] += 1
                counts["wrong_script"] += share < SCRIPT_MAJORITY
    for counts in per.values():
        total.update(counts)
    top = {d: (c.most_common(1)[0][1] if c else 0) for d, c in hyps.items()}
    return {"total": total, "per": per, "top": top, "top_text": {d: c.most_common(1)[0][0] for d, c in hyps.items() if c}}


def check_translations(step: str, hyps: Path, options: HealthOptions) -> list[Finding]:
    """The output checks over a translation's hypotheses (and, for max_new_tokens, its manifest)."""
    stats = translation_stats(read_records(str(hyps), "hypothesis"))
    total, per = stats["total"], stats["per"]
    n = total["n"]
    if not n:
        return []
    findings: list[Finding] = []

    def share_check(check: str, key: str, limit: float, denominator: str = "n") -> None:
        base = total[denominator]
        if not base:
            return
        value = total[key] / base
        worst = max(per, key=lambda d: per[d][key] / per[d][denominator] if per[d][denominator] else 0)
        where = "" if len(per) == 1 else f"; worst {worst}: {per[worst][key]} of {per[worst][denominator]}"
        findings.append(Finding(step, check, f"{total[key]} of {base} ({_pct(value)}; at most {_pct(limit)}){where}",
                                value, limit, value > limit))

    share_check("empty hypotheses", "empty", options.max_empty)
    manifest = read_marker(Path(f"{hyps}.run.json")) or {}
    cut, generated = manifest.get("stopped_at_max_new_tokens"), manifest.get("generated")
    if isinstance(cut, int) and isinstance(generated, int) and generated:
        limit = (manifest.get("decoding") or {}).get("max_new_tokens")
        value = cut / generated
        findings.append(Finding(step, "stopped at max_new_tokens", f"{cut} of {generated} ({_pct(value)}; at most "
                                f"{_pct(options.max_at_limit)}) ran to the limit of {limit} new tokens", value,
                                options.max_at_limit, value > options.max_at_limit))
    share_check("copying the source", "copy", options.max_copy)
    share_check("degenerate repetition", "repetitive", options.max_repetitive)
    direction = max(per, key=lambda d: stats["top"][d] / per[d]["n"])
    value = stats["top"][direction] / per[direction]["n"]
    text = stats["top_text"].get(direction, "")
    shown = (text[:40] + "…") if len(text) > 40 else text
    findings.append(Finding(step, "one hypothesis for most inputs", f"{direction}: {stats['top'][direction]} of "
                            f"{per[direction]['n']} inputs get {shown!r} ({_pct(value)}; at most "
                            f"{_pct(options.max_same_hypothesis)})", value, options.max_same_hypothesis,
                            value > options.max_same_hypothesis and stats["top"][direction] > 1))
    share_check("wrong script", "wrong_script", options.max_wrong_script, "scripted")
    return findings


# ---------------------------------------------------------------------------------------------- score
def check_identical(step: str, hyps: dict[str, Path], options: HealthOptions) -> list[Finding]:
    """Systems (name → hypotheses file) that translate (nearly) every shared record the same way."""
    outputs = {name: {str(r.get("id")): str(r.get("hyp") or "").strip() for r in read_records(str(path), "hypothesis")}
               for name, path in hyps.items()}
    names = list(outputs)
    findings: list[Finding] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = outputs[a].keys() & outputs[b].keys()
            if not shared:
                continue
            same = sum(outputs[a][k] == outputs[b][k] for k in shared)
            value = same / len(shared)
            findings.append(Finding(step, "identical hypotheses", f"{a} and {b}: {same} of {len(shared)} records "
                                    f"({_pct(value)}; at most {_pct(options.max_identical)})", value,
                                    options.max_identical, value > options.max_identical))
    return findings


# ---------------------------------------------------------------------------------------------- a graph's steps
def check_step(graph: Any, key: str, options: HealthOptions | None = None) -> list[Finding]:
    """The checks of one finished step of an experiment graph (none for the kinds without checks)."""
    options = options or health_options(graph)
    step = graph.steps[key]
    if step.kind == "translate" and graph.exp.language_file:  # its `flores` column gives your languages' scripts
        use_language_file(graph.exp.language_file)
    if step.kind == "train":
        return check_training(step.name, graph.directory(key), options)
    if step.kind == "translate":
        return check_translations(step.name, graph.output(key), options)
    if step.kind == "score":
        hyps: dict[str, Path] = {}
        for name in step.names:
            table = graph.exp.tables.get(name.partition("/")[2])
            if table is None:
                continue
            for system in ([table.baseline] if table.baseline else []) + list(table.systems):
                other = graph.by_name.get(f"translate/{system}")
                if other is not None and graph.output(other).exists():
                    hyps.setdefault(system, graph.output(other))
        return check_identical(step.name, hyps, options)
    return []


def health_options(graph: Any) -> HealthOptions:
    return HealthOptions(**(getattr(graph.exp, "health", None) or {}))


HEALTH_EXIT = 3  # a step's exit code in failed.json when `run --strict` failed it for its health


def health_failed(graph: Any, key: str, echo: Any, *, strict: bool = False) -> bool:
    """After a step exited 0: a warning line per failed check (`echo`, and the step's log); True when `strict`
    and a check failed (the step then counts as failed)."""
    try:
        findings = [f for f in check_step(graph, key) if f.failed]
    except Exception as exc:  # noqa: BLE001 - a check that cannot read an output must not lose a finished step
        echo(f"  warning: {graph.steps[key].name}: the health checks could not run: {exc}")
        return False
    lines = [f"  warning: {f.line()}" for f in findings]
    for line in lines:
        echo(line)
    if findings:
        try:
            with open(log_path(graph, key), "a", encoding="utf-8") as log:
                log.write("".join(f"# health{line.strip().removeprefix('warning')}\n" for line in lines))
                if strict:
                    log.write("# --strict: the step fails for its health\n")
        except OSError:
            pass
    return strict and bool(findings)
