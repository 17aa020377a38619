"""The options of `ait score`, one definition each (see `aligninstruct_cli.options`). Defaults are the
paper's (all three metrics), ait's choice (the COMET checkpoint: the paper names none), comet's (batch size)
or sacrebleu's (bootstrap resamples, seed), each defined where it is used and said so there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from aligninstruct_cli.io import known_language
from aligninstruct_cli.languages import LanguagesOption, get_language
from aligninstruct_cli.metrics import significance
from aligninstruct_cli.metrics.catalog import DEFAULT_METRICS, METRIC_TYPES, METRICS
from aligninstruct_cli.metrics.bleu_chrf import check_tokenizer, spm_tokenizers
from aligninstruct_cli.metrics.comet import DEFAULT_COMET_MODEL, comet_batch_size_option
from aligninstruct_cli.metrics.groups import GROUP_ORDER
from aligninstruct_cli.metrics.report import FORMATS, LAYOUTS
from aligninstruct_cli.options import OptionError, check_options, option, option_ref


def parse_metrics(value: Any) -> list[str]:
    """`bleu,chrf`, `-m bleu -m chrf` (CLI) or [bleu, chrf] (config) → metric names, lowercased, first mention
    kept."""
    if not isinstance(value, (str, list, tuple)):
        return value  # the type check says what is wrong
    items = [part for item in ([value] if isinstance(value, str) else value) for part in str(item).split(",")]
    names = list(dict.fromkeys(str(m).strip().lower() for m in items if str(m).strip()))
    if not names or any(m not in METRICS for m in names):
        raise OptionError(f"{option_ref('metrics')} {value!r}: expected a comma-separated subset of {', '.join(METRICS)}")
    return names


def parse_refs(value: Any) -> list[str] | None:
    """`--refs A --refs B` (CLI), a path or a list of paths (config) → the reference files, in order."""
    if value is None or isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise OptionError(f"{option_ref('refs')} must be a file or a list of files")
    return list(value) or None


def parse_names(value: Any) -> list[str]:
    """`a,b` (CLI) or [a, b] (config) → system names."""
    return [n.strip() for n in value.split(",")] if isinstance(value, str) else value


def parse_groups(value: Any) -> list[str]:
    """`en→xx,overall` (CLI; `->` for `→`) or [en→xx, overall] (config) → group names, first mention kept."""
    if not isinstance(value, (str, list, tuple)):
        return value  # the type check says what is wrong
    items = value.split(",") if isinstance(value, str) else value
    names = list(dict.fromkeys(str(g).strip().replace("->", "→") for g in items if str(g).strip()))
    unknown = [g for g in names if g not in GROUP_ORDER]
    if unknown or not names:
        problem = f"unknown group {', '.join(map(repr, unknown))}" if unknown else f"no group in {value!r}"
        raise OptionError(f"{option_ref('groups')}: {problem}; available: {', '.join(GROUP_ORDER)}")
    return names


def parse_languages(value: Any) -> list[str]:
    """`fr,de` (CLI) or [fr, de] (config) → language codes as given, each one a known language."""
    if not isinstance(value, (str, list, tuple)):
        return value  # the type check says what is wrong
    items = value.split(",") if isinstance(value, str) else value
    codes = list(dict.fromkeys(str(code).strip() for code in items if str(code).strip()))
    for code in codes:
        get_language(code)
    return codes


HYP_FORMATS = ("auto", "jsonl", "text")
TEXT_PANEL = "Plain-text input (sacrebleu style)"


@dataclass(kw_only=True)
class ScoreOptions(LanguagesOption):
    """The options of `ait score`. `metrics` left out: all three, as the paper (`metrics_given` is False then,
    so that the command can leave COMET out for plain-text hypotheses without sources)."""

    refs: Optional[list[str]] = option(
        None, flags=("--refs", "-r", "--references"), parse=parse_refs, cli_type=Optional[list[str]],
        metavar="FILE", help="References: JSONL with id and tgt (matched by id) or plain text, one a line (matched "
        "by position); repeat for several references per segment. Default: each record's tgt.",
        details="Several files (`--refs A --refs B`; a list in a config file) score every segment against all of "
                "them, as sacrebleu does with several references (`nrefs:2` in the signatures); BLEU, chrF and "
                "TER take them, COMET one. `--references` is comet-score's spelling.")
    metrics: Optional[list[Literal[METRICS]]] = option(  # type: ignore[valid-type]
        None, flags=("--metrics", "-m"), parse=parse_metrics, cli_type=Optional[list[str]],
        default_doc="bleu,chrf,comet",
        help="Comma-separated, space-separated as sacrebleu (-m bleu chrf) or repeated (-m bleu -m chrf): bleu, "
             "chrf (chrF++), comet, ter. Default: bleu,chrf,comet, as the paper; bleu,chrf for plain-text "
             "hypotheses without --src.",
        details="In a config file, a list. TER is sacrebleu's (lower is better: a significant win is a drop).")
    tokenize: Optional[str] = option(None, flags=("--tokenize", "-tok"), parse=check_tokenizer,
                                     help="sacrebleu BLEU tokenizer for every direction (default: zh, ja-mecab, "
                                          "ko-mecab by target language, else 13a).",
                                     details="flores200 (spBLEU), flores101 and spm need sacrebleu's "
                                             "SentencePiece model: see --spm-model.")
    lowercase: bool = option(False, flags=("--lowercase", "-lc"),
                             help="Lowercased BLEU (sacrebleu's -lc; chrF++ and COMET are unchanged).",
                             details="The BLEU signature then says `case:lc`.")
    input_format: Literal[HYP_FORMATS] = option(  # type: ignore[valid-type]
        "auto", panel=TEXT_PANEL,
        help="Hypotheses: jsonl (from `ait translate`), text (one hypothesis a line, as sacrebleu reads them), or "
             "auto: jsonl for .jsonl/.json/.ndjson, text for .txt, else by the first line.")
    src: Optional[str] = option(None, flags=("--src", "-s", "--sources"), metavar="FILE", panel=TEXT_PANEL,
                                help="Plain-text hypotheses: their source sentences, one a line (COMET needs them).")
    src_lang: Optional[str] = option(None, parse=known_language, panel=TEXT_PANEL,
                                     help="Plain-text hypotheses: the source language (ISO 639 or FLORES code).")
    tgt_lang: Optional[str] = option(None, parse=known_language, panel=TEXT_PANEL,
                                     help="Plain-text hypotheses: the target language (it picks BLEU's tokenizer).",
                                     details="Plain text needs --src-lang and --tgt-lang unless --tokenize names "
                                             "BLEU's tokenizer: then the direction is shown as `?-?` and forms "
                                             "no group.")
    spm_model: Optional[str] = option(None, metavar="PATH",
                                      help="The SentencePiece model file of --tokenize flores200 (flores101, spm), "
                                           "for a machine without network access.",
                                      details="Default: sacrebleu's own copy ($SACREBLEU or ~/.sacrebleu, under "
                                              "models/), downloaded there on first use; the signature says "
                                              "tok:flores200 either way.")
    comet_model: str = option(DEFAULT_COMET_MODEL, flags=("--comet-model", "--model"),
                              help="COMET model: hub name, model directory or checkpoint file.",
                              details="The default is ait's choice: the paper cites COMET (Rei et al., 2020) but "
                                      "names no checkpoint.")
    comet_batch_size: str = option(
        "auto", parse=comet_batch_size_option, metavar="N|auto",
        help="COMET segments per batch: a number, or auto: on a GPU the largest batch that fits (tried on the "
             "longest segments, from 256 down), on a CPU comet's default 16.",
        details="Batches are length-sorted (comet's length batching). Padding moves segment scores in the last "
                "digits, so the batch size used is part of the signature.")
    comet_gpus: Optional[int] = option(None, flags=("--comet-gpus", "--gpus"), min=0, default_doc="1 if a GPU is "
                                       "visible, else 0", help="GPUs COMET runs on (0: the CPU), as comet-score's "
                                       "--gpus.")
    chrf_word_order: int = option(2, flags=("--chrf-word-order", "-cw"), min=0,
                                  help="Word n-gram order of chrF (sacrebleu's -cw): 2 is chrF++ (the paper's), 0 "
                                       "is chrF.", details="The label follows it (chrF, chrF+, chrF++); the "
                                                           "signature says nw:N.")
    confidence: bool = option(False, flags=("--confidence", "-ci"),
                              help="Each score's 95% bootstrap interval as sacrebleu prints it: (μ = mean ± "
                                   "half-width), from --bootstrap-samples resamples drawn with --seed.",
                              details="As sacrebleu's --confidence: per system and direction, the resamples "
                                      "`default_rng(seed).choice(n, (samples, n))` (sacrebleu's own, so the "
                                      "numbers are its), their mean and half the distance between the 2.5th and "
                                      "97.5th percentiles; BLEU/chrF/TER signatures gain bs and seed. In JSON "
                                      "`confidence_mean` and `confidence_var`, sacrebleu's keys.")
    score_only: bool = option(False, flags=("--score-only", "-b"),
                              help="Print only the scores, one a line (sacrebleu's -b): per system, direction "
                                   "and metric, in that order.")
    width: Optional[int] = option(None, flags=("--width", "-w"), min=0, max=10, default_doc="2",
                                  help="Decimals of the printed scores (sacrebleu's -w).",
                                  details="Table, markdown and --score-only output; JSON and TSV keep every digit.")
    format: Literal[FORMATS] = option(  # type: ignore[valid-type]
        "table", flags=("--format", "-f"), help="table | json | markdown (the paper's Tables 1/5: see --layout) | tsv.")
    layout: Literal[LAYOUTS] = option(  # type: ignore[valid-type]
        "ait", help="Markdown layout: ait (a row per system, a column per group and metric), table1 (the paper's "
        "Table 1: the same with its groups and each score's 95% interval), table5 (the paper's Table 5: a row "
        "per group, a column per system and metric, with intervals), languages (Tables 11–13: a row per "
        "language), directions (Tables 14–18: a row per direction, then per group).",
        details="Every layout shows each score's 95% interval (`ci95`, bootstrap percentiles). The layout picks "
                "the default groups in every format, so that the JSON holds the table's numbers; table1 and "
                "table5 put OPUS-100 test sets before FLORES-200, as the paper.")
    groups: Optional[list[Literal[GROUP_ORDER]]] = option(  # type: ignore[valid-type]
        None, parse=parse_groups, cli_type=Optional[str], metavar="NAMES", default_doc="by --layout",
        help="Comma-separated direction groups to report, in this order (e.g. en→xx,xx→en,overall; -> for →).",
        details="The groups: " + ", ".join(GROUP_ORDER) + " (`overall`: every zero-shot direction). Default: "
                "ait: every group (overall where there are zero-shot directions); table1 and languages: en→xx, xx→en; table5 and directions: every "
                "group. Each test set "
                "gets the groups it has directions for. In a config file, a list.")
    baseline: Optional[str] = option(None, help="Baseline hypotheses: paired bootstrap of every system against it, "
                                     "per direction and group.")
    names: Optional[list[str]] = option(
        None, parse=parse_names, cli_type=Optional[str],
        help="Comma-separated system names for HYPS (default: file names without .jsonl).",
        details="`.gz`, `.ndjson` and `.json` go too (stdin: `stdin`). In a config file, a list.")
    baseline_name: Optional[str] = option(None, help="Name of the baseline row (default: its file name).")
    bootstrap_samples: int = option(significance.DEFAULT_SAMPLES, min=1,
                                    help="Bootstrap resamples (sacrebleu's default 1000).")
    alpha: float = option(significance.DEFAULT_ALPHA, min=0.0, max=1.0, min_open=True, max_open=True,
                          help="Significance level for marking wins.",
                          details="A difference is `significant` when p < alpha, and `better` (marked `†`) "
                                  "when it is also positive.")
    seen: Optional[list[str]] = option(
        None, parse=parse_languages, cli_type=Optional[str], metavar="CODES",
        help="Comma-separated languages the scored base model saw in pre-training: they split the seen/unseen "
             "groups.", default_doc="BLOOM's list for BLOOM/BLOOMZ",
        details="Default: BLOOM's list when the hypotheses' `model` is BLOOM or BLOOMZ (or names no model); "
                "for other models, a `seen` column in the --languages file, else no seen/unseen groups (with a "
                "note). In a config file, a list.")
    seed: int = option(significance.DEFAULT_SEED, help="Random seed; the same seed gives the same output bytes.",
                       details="It seeds the bootstrap; the default is sacrebleu's.")

    metrics_given: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_options(self)
        self.metrics_given = self.metrics is not None
        if self.metrics is None:
            self.metrics = list(DEFAULT_METRICS)
        single = [METRIC_TYPES[m] for m in self.metrics if not METRIC_TYPES[m].multi_reference]
        if self.refs and len(self.refs) > 1 and single and self.metrics_given:  # asked by name: refused at once
            labels = " and ".join(m.label for m in single)
            several = " ".join(m for m in self.metrics if METRIC_TYPES[m].multi_reference) or "bleu chrf"
            raise OptionError(f"{labels} scores against one reference, and {option_ref('refs')} gives {len(self.refs)}",
                              hint=f"score {labels} with one --refs, and the others with several (-m {several})")
        if self.spm_model is not None and self.tokenize not in spm_tokenizers():
            others = ", ".join(t for t in spm_tokenizers() if t != "flores200")
            raise OptionError(f"{option_ref('spm_model')} is the model of a SentencePiece tokenizer: give "
                              f"{option_ref('tokenize')} flores200 (or {others})")
