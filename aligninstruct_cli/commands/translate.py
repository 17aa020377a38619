"""`ait translate`: translate source records with a model (+ LoRA adapter); see docs/translate.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands._options import (InputArg, OnErrorOpt, OutputOpt, SrcLangOpt, TgtLangOpt,
                                                 finish)
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import (STDIO, AppendRecordWriter, ErrorPolicy, RecordWriter, read_json, read_records,
                                  write_json)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Base model: a hub id or a local directory.")]
AdapterOpt = Annotated[Optional[str], typer.Option(
    "--adapter", help="LoRA adapter directory (from `ait train`); its base model must be --model.")]
MergeOpt = Annotated[bool, typer.Option("--merge", help="Merge the adapter into the base weights before "
                                        "generating (faster generation, same output up to rounding).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto (bfloat16 on GPUs that have it, float16 on "
                                       "other GPUs, float32 on CPU), float32, bfloat16, float16.")]


def _input_format(path: str, fmt: str) -> str:
    if fmt == "auto" and path.lower().removesuffix(".gz").endswith(".txt"):
        return "text"
    return fmt


def _finished_ids(output: str, model: str, adapter: Optional[str], prompt_name: str) -> set:
    """Ids already in a resumed output file (none on a first run); refuses a file made with another
    model/adapter/prompt."""
    if not Path(output).exists():
        return set()
    AppendRecordWriter.trim_partial_line(output)
    done = set()
    for line_no, rec in read_records(output, kind="hypothesis", with_location=True):
        made_with = (rec.get("model"), rec.get("adapter"), rec.get("prompt_name"))
        if made_with != (model, adapter, prompt_name):
            raise AitError(f"{output}:{line_no}: --resume: this file was made with model={made_with[0]!r} "
                           f"adapter={made_with[1]!r} prompt={made_with[2]!r}, not model={model!r} "
                           f"adapter={adapter!r} prompt={prompt_name!r}",
                           hint="resume with the same options, or write to a new --output")
        done.add(rec["id"])
    return done


def manifest_path(output: str) -> Path | None:
    """OUTPUT.run.json beside a file output: how its hypotheses were made (none for stdout)."""
    return None if output == STDIO else Path(f"{output}.run.json")


def _check_resumed_decoding(manifest: Path | None, decoding: dict) -> dict | None:
    """The manifest of the run being resumed, after checking that it decoded the same way (a resumed file
    must not mix beam sizes, length limits or dtypes). None on a first run or a file without one."""
    if manifest is None or not manifest.exists():
        return None
    old = read_json(manifest)
    diffs = [f"{key}: {old.get('decoding', {}).get(key)!r} then, {value!r} now" for key, value in decoding.items()
             if old.get("decoding", {}).get(key) != value]
    if diffs:
        raise AitError(f"{manifest}: --resume: the hypotheses so far were decoded otherwise:\n  " + "\n  ".join(diffs),
                       hint="resume with the same options, or write to a new --output")
    return old


def _skip_done(records: Iterable[dict], done: set, counter: list[int]) -> Iterator[dict]:
    for rec in records:
        if rec["id"] in done:
            counter[0] += 1
            continue
        yield rec


def translate(
    input: InputArg,
    model: ModelOpt,
    adapter: AdapterOpt = None,
    merge: MergeOpt = False,
    output: OutputOpt = STDIO,
    prompt: Annotated[str, typer.Option("--prompt", help="default (the MTInstruct input), 1..5 (the paper's "
                                        "PROMPT-1..5) or a custom template with {src_name} {tgt_name} {src} "
                                        "(\\n means a newline).")] = "default",
    num_beams: Annotated[int, typer.Option("--num-beams", help="Beam size; 1 = greedy search (the paper's).")] = 1,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Most tokens generated per sentence "
                                                "(default: the paper's 384).")] = 384,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sentences per generate call; halved "
                                            "automatically on CUDA out-of-memory.")] = 16,
    pivot: Annotated[Optional[str], typer.Option("--pivot", help="Pivot language (e.g. en): translate "
                                                 "src→pivot→tgt when neither side is the pivot; the "
                                                 "record keeps the pivot text in pivot_hyp.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Append to --output, skipping ids it already "
                                         "holds; the file is synced after every chunk so an interrupted "
                                         "run can resume (not atomic).")] = False,
    input_format: Annotated[str, typer.Option("--input-format", help="auto|jsonl|tsv|fast_align|text (text: one "
                                              "source sentence a line, needs --src-lang/--tgt-lang; auto "
                                              "picks text for *.txt).")] = "auto",
    src_lang: SrcLangOpt = None,
    tgt_lang: TgtLangOpt = None,
    on_error: OnErrorOpt = "fail",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Translate source records (JSONL, TSV, `|||` or plain text) with a model and optional LoRA adapter.

    Each output record keeps every input field and adds hyp, prompt_name, model and adapter."""
    from aligninstruct_cli.generation import Translator, load_model, resolve_prompt
    from aligninstruct_cli.languages import get_language

    the_prompt = resolve_prompt(prompt)
    if pivot:
        get_language(pivot)
    if resume and output == STDIO:
        raise AitError("--resume needs --output FILE (it appends to that file)")
    fmt = _input_format(input, input_format)
    policy = ErrorPolicy(on_error)

    def records():
        return read_records(input, kind="source", fmt=fmt, src_lang=src_lang, tgt_lang=tgt_lang,
                            policy=policy, id_prefix="")

    total = None
    if input != STDIO:  # validate the whole input before loading a model; also gives the bar its total
        total = sum(1 for _ in read_records(input, kind="source", fmt=fmt, src_lang=src_lang,
                                            tgt_lang=tgt_lang, policy=ErrorPolicy(on_error)))
        if total == 0:
            raise AitError(f"{input}: no records to translate")
    done = _finished_ids(output, model, adapter, the_prompt.name) if resume else set()
    if total is not None and done:
        total = max(0, total - len(done))
    decoding = {"model": model, "adapter": adapter, "merge": merge, "prompt_name": the_prompt.name,
                "prompt_template": the_prompt.template, "num_beams": num_beams, "max_new_tokens": max_new_tokens,
                "pivot": pivot, "dtype": dtype}
    manifest = manifest_path(output)
    previous = _check_resumed_decoding(manifest, decoding) if resume else None

    loaded = load_model(model, adapter, merge=merge, device=device, dtype=dtype)
    resolved_dtype = str(loaded.model.dtype).removeprefix("torch.")
    if previous and previous.get("resolved_dtype") not in (None, resolved_dtype):
        raise AitError(f"{manifest}: --resume: the hypotheses so far were generated in "
                       f"{previous['resolved_dtype']}, this machine gives {resolved_dtype}",
                       hint=f"pass --dtype {previous['resolved_dtype']}")
    if manifest is not None:
        from aligninstruct_cli.provenance import file_sha256, package_versions

        started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        run_info = previous or {
            "command": sys.argv, "started_at": started_at, "input": input,
            "input_sha256": file_sha256(input) if input != STDIO else None, "output": output,
            "decoding": decoding, "resolved_dtype": resolved_dtype,
            "versions": package_versions(("torch", "transformers", "peft", "tokenizers"))}
        if previous:
            run_info.setdefault("resumed", []).append({"command": sys.argv, "at": started_at})
        run_info.update({"status": "running", "device": str(loaded.device), "batch_size": batch_size})
        if resume:  # the output grows as it goes: a killed run leaves its settings for the next --resume
            write_json(manifest, run_info)
    skipped = [0]
    with console.progress() as bar:
        task = bar.add_task("translate", total=total, rate="")
        started = time.perf_counter()
        counts = {"sent": 0, "tok": 0}

        def on_batch(n_sentences: int, n_tokens: int) -> None:
            counts["sent"] += n_sentences
            counts["tok"] += n_tokens
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=n_sentences if not pivot else 0,
                       rate=f"{counts['sent'] / elapsed:,.1f} sent/s {counts['tok'] / elapsed:,.0f} tok/s")

        translator = Translator(loaded, prompt=the_prompt, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                batch_size=batch_size, on_batch=on_batch)
        chunks = translator.translate_chunks(_skip_done(records(), done, skipped), pivot=pivot)
        writer = AppendRecordWriter(output) if resume else RecordWriter(output)
        with writer as out:
            for chunk in chunks:
                for rec in chunk:
                    out.write(rec)
                if resume:
                    out.sync()
                if pivot:
                    bar.update(task, advance=len(chunk))
            if out.count == 0 and not skipped[0]:  # raised inside: the atomic writer leaves no file
                raise AitError(f"{input}: no records to translate")
        written = out.count
    finish(policy)
    stats = translator.stats
    seconds = max(stats.seconds, 1e-9)
    if manifest is not None:
        run_info.update({"status": "finished", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         "records": written + skipped[0], "generate_seconds": round(stats.seconds, 3),
                         "sentences_per_s": round(stats.sentences / seconds, 2)})
        write_json(manifest, run_info)
    console.info(f"translated {written} record(s)"
                 + (f", {skipped[0]} already in {output}" if resume else "")
                 + f"; {stats.sentences / seconds:,.1f} sentences/s, {stats.new_tokens / seconds:,.0f} "
                   f"generated tokens/s in generate" + (" (pivot: two legs)" if pivot else ""))


def register(app: typer.Typer) -> None:
    app.command("translate")(translate)
