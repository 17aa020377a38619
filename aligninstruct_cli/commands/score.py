"""`ait score`: BLEU, chrF++ and COMET per direction and direction group, with paired bootstrap against a
baseline; see docs/score.md."""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands._options import OutputOpt, SeedOpt
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import STDIO, RecordWriter, write_records


def score(
    hyps: Annotated[List[str], typer.Argument(help="Hypothesis JSONL file(s) from `ait translate` (one system "
                                              "each, a row of the table); - for stdin.")],
    refs: Annotated[Optional[str], typer.Option("--refs", help="References: JSONL with id and tgt (matched by "
                                                "id) or plain text, one a line (matched by position). Default: "
                                                "each record's tgt.")] = None,
    metrics: Annotated[str, typer.Option("--metrics", help="Comma-separated: bleu, chrf (chrF++), comet. "
                                         "Default: all three, as the paper.")] = "bleu,chrf,comet",
    tokenize: Annotated[Optional[str], typer.Option("--tokenize", help="sacrebleu BLEU tokenizer for every "
                                                    "direction (default: zh, ja-mecab, ko-mecab by target "
                                                    "language, else 13a).")] = None,
    comet_model: Annotated[str, typer.Option("--comet-model", help="COMET model: hub name, model directory or "
                                             "checkpoint file.")] = "Unbabel/wmt22-comet-da",
    comet_batch_size: Annotated[int, typer.Option("--comet-batch-size", help="COMET batch size.")] = 16,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | markdown (the paper's Tables 1/5 "
                                     "layout) | tsv.")] = "table",
    output: OutputOpt = STDIO,
    sentence_level: Annotated[Optional[str], typer.Option("--sentence-level", help="Also write one JSONL "
                                                          "record per system and segment with its scores to "
                                                          "this file (- for stdout).")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Baseline hypotheses: paired bootstrap "
                                                    "of every system against it, per direction and group.")] = None,
    names: Annotated[Optional[str], typer.Option("--names", help="Comma-separated system names for HYPS "
                                                 "(default: file names without .jsonl).")] = None,
    baseline_name: Annotated[Optional[str], typer.Option("--baseline-name", help="Name of the baseline row "
                                                         "(default: its file name).")] = None,
    bootstrap_samples: Annotated[int, typer.Option("--bootstrap-samples", help="Bootstrap resamples "
                                                   "(sacrebleu's default 1000).")] = 1000,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level for marking wins.")] = 0.05,
    seed: SeedOpt = 12345,
) -> None:
    """Score hypotheses with BLEU, chrF++ and COMET per direction and per direction group."""
    from aligninstruct_cli.metrics import report as report_mod
    from aligninstruct_cli.metrics import scoring

    chosen = scoring.parse_metrics(metrics)
    if fmt not in report_mod.FORMATS:
        raise AitError(f"--format {fmt!r}: expected one of {', '.join(report_mod.FORMATS)}")
    if sentence_level == STDIO and output == STDIO:
        raise AitError("--sentence-level - and the report both go to stdout", hint="give one of them a file")
    system_names = [n.strip() for n in names.split(",")] if names else [None] * len(hyps)
    if len(system_names) != len(hyps):
        raise AitError(f"--names gives {len(system_names)} name(s) for {len(hyps)} file(s)")
    if sum(p == STDIO for p in hyps + ([baseline] if baseline else []) + ([refs] if refs else [])) > 1:
        raise AitError("only one input can be stdin (-)")
    systems = [scoring.read_hypotheses(path, name) for path, name in zip(hyps, system_names)]
    base = scoring.read_hypotheses(baseline, baseline_name) if baseline else None
    taken = [s.name for s in ([base] if base else []) + systems]
    if len(set(taken)) != len(taken):
        raise AitError(f"two systems share a name ({', '.join(taken)})", hint="name them with --names")
    comet_scorer = None
    if "comet" in chosen:
        from aligninstruct_cli.metrics.comet import CometScorer

        comet_scorer = CometScorer(comet_model, batch_size=comet_batch_size,
                                   progress=not console.is_quiet() and console.stderr.is_terminal)
    options = scoring.ScoreOptions(metrics=chosen, tokenize=tokenize, comet=comet_scorer,
                                   n_samples=bootstrap_samples, seed=seed, alpha=alpha,
                                   sentence_level=sentence_level is not None)
    report, sentence_records = scoring.score_files(systems, options, baseline=base, refs_path=refs)
    text = report_mod.render(report, fmt)
    if sentence_level is not None:
        write_records(sentence_level, sentence_records)
    with RecordWriter(output) as out:
        out.write_line(text.rstrip("\n"))
    console.info(f"scored {len(taken)} system(s) on {report['n_segments']} segment(s), "
                 f"{len(report['directions'])} direction(s), {len(report['groups'])} group(s)")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
