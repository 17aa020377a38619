"""`ait align`: word alignment (fast_align's model, or eflomal) and gold span pairs for AlignInstruct."""

from __future__ import annotations

import time
from typing import Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands._options import (InputArg, InputFormatOpt, OnErrorOpt, OutputOpt, SrcLangOpt,
                                                 TgtLangOpt, finish)
from aligninstruct_cli.errors import AitError

HELP = """Word-align parallel sentences and extract the gold span pairs AlignInstruct needs.

Input: parallel JSONL, TSV (src<TAB>tgt) or `src ||| tgt` lines (the last two need --src-lang and --tgt-lang). Output: aligned JSONL records (the input fields plus src_tokens, tgt_tokens, links, pairs) or, with --format pharaoh, one `i-j` line per sentence pair (0-based, source-target).

The model is fast_align's (IBM Model 2 with a diagonal prior, tension optimisation and variational Bayes, as `fast_align -d -o -v`), trained in both directions and symmetrized with grow-diag-final-and; see docs/align.md."""


def align_command(
    input: InputArg = "-",
    output: OutputOpt = "-",
    input_format: InputFormatOpt = "auto",
    src_lang: SrcLangOpt = None,
    tgt_lang: TgtLangOpt = None,
    output_format: Annotated[str, typer.Option("--format", help="jsonl: aligned records; pharaoh: one "
                                               "`i-j` line per sentence pair (as fast_align/atools).")] = "jsonl",
    links: Annotated[str, typer.Option("--links", help="Which links to output: forward|reverse|intersect|"
                                       "union|grow-diag|grow-diag-final|grow-diag-final-and.")] = "grow-diag-final-and",
    tokenize: Annotated[Optional[str], typer.Option(
        "--tokenize", help="whitespace|simple|chars, or SRC,TGT to differ per side (e.g. simple,chars). "
        "simple splits off Unicode punctuation; chars is for scripts without spaces (Khmer, Burmese). "
        "Default whitespace (or the model's with --model).")] = None,
    lowercase: Annotated[Optional[bool], typer.Option(
        "--lowercase/--no-lowercase", help="Lowercase words for the model (output tokens keep their "
        "case). Default off (or the model's with --model).")] = None,
    iterations: Annotated[int, typer.Option("--iterations", "-I", help="EM iterations (fast_align -I); "
                                            "the last one only takes the Viterbi links.")] = 5,
    p0: Annotated[float, typer.Option("--p0", help="Null-alignment probability (fast_align -p/-q).")] = 0.08,
    tension: Annotated[float, typer.Option("--tension", help="Initial diagonal tension (fast_align -T).")] = 4.0,
    favor_diagonal: Annotated[bool, typer.Option("--favor-diagonal/--no-favor-diagonal",
                                                 help="Diagonal alignment prior (fast_align -d); off = IBM Model 1.")] = True,
    optimize_tension: Annotated[bool, typer.Option("--optimize-tension/--no-optimize-tension",
                                                   help="Re-estimate the tension during EM (fast_align -o).")] = True,
    variational_bayes: Annotated[bool, typer.Option("--variational-bayes/--no-variational-bayes",
                                                    help="Dirichlet prior on t(f|e), mean-field VB (fast_align -v).")] = True,
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration for --variational-bayes "
                                         "(fast_align -a).")] = 0.01,
    max_span: Annotated[int, typer.Option("--max-span", help="Longest span, in words, on each side of a "
                                          "gold pair.")] = 3,
    min_score: Annotated[float, typer.Option("--min-score", help="Drop pairs scoring below this (score: "
                                             "geometric mean of both directions' lexical probabilities).")] = 0.05,
    max_pairs: Annotated[int, typer.Option("--max-pairs", help="Keep at most this many pairs per sentence "
                                           "(the best-scoring); 0 = no pairs.")] = 16,
    keep_punct: Annotated[bool, typer.Option("--keep-punct", help="Keep pairs whose source or target "
                                             "side is punctuation only.")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest sentence, in tokens per side; "
                                            "longer ones are input errors.")] = 1000,
    on_error: OnErrorOpt = "fail",
    save_model: Annotated[Optional[str], typer.Option("--save-model", metavar="DIR",
                                                      help="Save the trained model to DIR.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", metavar="DIR", help="Align with a model saved "
                                                 "by --save-model instead of training (EM options ignored).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="fast_align (built in) or eflomal (optional "
                                         "extra: pip install 'aligninstruct-cli\\[eflomal]').")] = "fast_align",
    threads: Annotated[int, typer.Option("--threads", help="Worker threads for pair-id building and EM "
                                         "(each runs single-threaded PyTorch ops on its share of the "
                                         "corpus). Use the number of idle cores.")] = 1,
    work_dir: Annotated[Optional[str], typer.Option("--work-dir", metavar="DIR", help="Where temporary "
                                                    "files go (spooled records, large cell-id maps); "
                                                    "default: the system temp directory.")] = None,
) -> None:
    from aligninstruct_cli.align.model import EMOptions
    from aligninstruct_cli.align.persist import AlignmentModel
    from aligninstruct_cli.align.pipeline import AlignConfig, CorpusAligner
    from aligninstruct_cli.align.tokenize import parse_tokenize_option
    from aligninstruct_cli.errors import InputError, RecordError
    from aligninstruct_cli.io import ErrorPolicy, RecordWriter, read_records

    if model and save_model:
        raise AitError("--model and --save-model exclude each other (a loaded model is not retrained)")
    loaded = AlignmentModel.load(model) if model else None
    if loaded is not None:
        if tokenize is not None and parse_tokenize_option(tokenize) != tuple(loaded.tokenize):
            console.warn(f"--tokenize {tokenize} ignored: the model was trained with {','.join(loaded.tokenize)}")
        if lowercase is not None and lowercase != loaded.lowercase:
            console.warn("--lowercase/--no-lowercase ignored: the model decides")
    try:
        tokenizers = parse_tokenize_option(tokenize or "whitespace")
    except ValueError as exc:
        raise AitError(str(exc)) from None
    config = AlignConfig(
        links=links, output_format=output_format, tokenize=tokenizers, lowercase=bool(lowercase),
        max_tokens=max_tokens, max_span=max_span, min_score=min_score, max_pairs=max_pairs,
        keep_punct=keep_punct, backend=backend, work_dir=work_dir, threads=threads,
        progress=not console.is_quiet(),
        em=EMOptions(iterations=iterations, favor_diagonal=favor_diagonal, optimize_tension=optimize_tension,
                     variational_bayes=variational_bayes, alpha=alpha, p0=p0, tension=tension))
    if save_model and backend != "fast_align":
        raise AitError("--save-model needs --backend fast_align (eflomal keeps no model)")
    policy = ErrorPolicy(on_error)
    started = time.perf_counter()
    with CorpusAligner(config, loaded) as aligner:
        located = read_records(input, "parallel", fmt=input_format, src_lang=src_lang, tgt_lang=tgt_lang,
                               policy=policy, with_location=True)
        for line_no, record in console.track(located, "reading", unit="sentences", every=4096):
            try:
                aligner.add(record)
            except RecordError as exc:
                policy.handle(InputError(input, line_no, exc.message, field=exc.field, hint=exc.hint))
        n = len(aligner)
        if n == 0:
            console.warn(f"{input}: no sentence pairs to align; the output is empty")
            with RecordWriter(output):
                pass
            finish(policy)
            return
        aligner.fit()
        if save_model:
            aligner.trained_model().save(save_model)
        n_links = n_pairs = 0
        with RecordWriter(output) as out:
            if output_format == "pharaoh":
                for line in aligner.pharaoh_lines():
                    out.write_line(line)
            else:
                for rec in aligner.aligned_records():
                    n_links += len(rec["links"])
                    n_pairs += len(rec["pairs"])
                    out.write(rec)
        elapsed = time.perf_counter() - started
        summary = f"aligned {n:,} sentence pairs in {elapsed:,.1f}s ({n / max(elapsed, 1e-9):,.0f} sentences/s)"
        if output_format == "jsonl":
            summary += f"; {n_links:,} links ({links}), {n_pairs:,} span pairs"
        if aligner.trainer is not None:
            summary += "; tension " + ", ".join(f"{name} {d.tension:.3f}" for name, d in aligner.trainer.directions.items())
        if save_model:
            summary += f"; model saved to {save_model}"
        console.info(summary)
    finish(policy)


def register(app: typer.Typer) -> None:
    app.command("align", help=HELP)(align_command)
