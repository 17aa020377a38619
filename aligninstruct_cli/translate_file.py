"""`ait translate` on files as a library function: the input read and checked before a model loads, `--resume`
(the ids an output already holds, and a check that they were made with the same model, prompt and decoding),
the run manifest OUTPUT.run.json beside a file output, and the progress bar. The batching itself is
generation.py's (one device) or translate_pool.py's (several)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.generation import TranslateOptions, Translator, resolve_prompt
from aligninstruct_cli.io import STDIO, AppendRecordWriter, ErrorPolicy, RecordWriter, char_budget, read_records
from aligninstruct_cli.models import LEGACY_PRECISIONS, load_model, pick_device, resolve_precision
from aligninstruct_cli.provenance import RunManifest, file_sha256, now, package_versions

MANIFEST_VERSIONS = ("torch", "transformers", "peft", "tokenizers")  # the packages that decide the hypotheses


def _input_format(path: str, fmt: str) -> str:
    if fmt == "auto" and path.lower().removesuffix(".gz").endswith(".txt"):
        return "text"
    return fmt


def _finished_ids(output: str, model: str, adapter: str | None, prompt_name: str) -> set:
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


def _legacy_settings(data: dict) -> dict:
    """A manifest written before precision had one vocabulary (`dtype: float32`, `resolved_dtype`) in
    today's keys and spellings, so a run that an older ait started can still be resumed."""
    def spelled(value):
        return LEGACY_PRECISIONS.get(value, value)

    decoding = dict(data.get("decoding", {}))
    if "dtype" in decoding:
        decoding["precision"] = spelled(decoding.pop("dtype"))
    data = {**data, "decoding": decoding}
    if "resolved_dtype" in data:
        data["resolved_precision"] = spelled(data.pop("resolved_dtype"))
    return data


def _check_resumed_decoding(manifest: Path | None, decoding: dict) -> tuple[RunManifest | None, dict]:
    """The manifest of the run being resumed and its data in today's names (`_legacy_settings`), after checking
    that it decoded the same way (a resumed file must not mix beam sizes, length limits or precisions).
    (None, {}) on a first run or a file without one."""
    previous = RunManifest.load(manifest) if manifest is not None else None
    if previous is None:
        return None, {}
    settings = _legacy_settings(previous.data)
    old = settings.get("decoding", {})
    diffs = [f"{key}: {old.get(key)!r} then, {value!r} now" for key, value in decoding.items() if old.get(key) != value]
    if diffs:
        raise AitError(f"{manifest}: --resume: the hypotheses so far were decoded otherwise:\n  " + "\n  ".join(diffs),
                       hint="resume with the same options, or write to a new --output")
    return previous, settings


def _skip_done(records: Iterable[dict], done: set, counter: list[int]) -> Iterator[dict]:
    for rec in records:
        if rec["id"] in done:
            counter[0] += 1
            continue
        yield rec


def translate_file(options: TranslateOptions, input: str, output: str, *, resume: bool, policy: ErrorPolicy) -> str:
    """`ait translate` on files: translate the source records of `input` into `output` (with `resume`: append
    to it, after the ids it holds, once its model, prompt and decoding are checked to be the same), with a
    progress bar and OUTPUT.run.json beside a file output. Bad records go to `policy`. Returns the summary line."""
    prompt = resolve_prompt(options.prompt)
    if resume and output == STDIO:
        raise AitError("--resume needs --output FILE (it appends to that file)")
    fmt = _input_format(input, options.input_format)

    def records(policy: ErrorPolicy):
        return read_records(input, kind="source", fmt=fmt, src_lang=options.src_lang, tgt_lang=options.tgt_lang,
                            policy=policy, id_prefix="", max_chars={"src": char_budget(options.max_input_tokens)})

    total = None
    if input != STDIO:  # validate the whole input before loading a model; also gives the bar its total
        total = sum(1 for _ in records(options.policy()))
        if total == 0:
            raise AitError(f"{input}: no records to translate")
    done = _finished_ids(output, options.model, options.adapter, prompt.name) if resume else set()
    if total is not None and done:
        total = max(0, total - len(done))
    decoding = {"model": options.model, "adapter": options.adapter, "merge": options.merges,
                "prompt_name": prompt.name, "prompt_template": prompt.template, "num_beams": options.num_beams,
                "max_new_tokens": options.max_new_tokens, "pivot": options.pivot, "precision": options.precision}
    path = manifest_path(output)
    previous, previous_settings = _check_resumed_decoding(path, decoding) if resume else (None, {})

    if options.num_gpus > 1:  # the workers load the model; this process only checks what it can before
        from aligninstruct_cli.translate_pool import worker_devices  # lazy: start-up (worker pool, ~3 ms)

        devices = worker_devices(options)
        resolved = resolve_precision(options.precision, pick_device(devices[0]).type)
        device_text = ",".join(devices)
    else:
        loaded = load_model(options.model, options.adapter, merge=options.merges, device=options.device,
                            precision=options.precision)
        resolved, device_text = loaded.precision, str(loaded.device)
    resolved_before = previous_settings.get("resolved_precision")
    if resolved_before not in (None, resolved):
        raise AitError(f"{path}: --resume: the hypotheses so far were generated in {resolved_before}, this machine "
                       f"gives {resolved}", hint=f"pass --precision {resolved_before}")
    this_run = {"device": device_text, "batch_size": options.batch_size, "num_gpus": options.num_gpus}
    started_at = now()

    def begin_manifest() -> RunManifest:
        return RunManifest(path).start(
            sys.argv, started_at=started_at, input=input,
            input_sha256=file_sha256(input) if input != STDIO else None, output=output, decoding=decoding,
            resolved_precision=resolved, versions=package_versions(MANIFEST_VERSIONS), **this_run)

    manifest = None
    if path is not None and resume:  # the output grows as it goes: a killed run leaves its settings for the next
        manifest = previous.resumed(sys.argv).update(**this_run) if previous else begin_manifest()
    skipped = [0]
    sources = _skip_done(records(policy), done, skipped)
    translator, written = _translate_to(output, sources, options, loaded if options.num_gpus <= 1 else None,
                                        total=total, append=resume, input=input, skipped=skipped)
    stats = translator.stats
    seconds = max(stats.seconds, 1e-9)
    if path is not None:  # without --resume the output is atomic: its manifest appears only beside a whole file
        (manifest or begin_manifest()).finish(records=written + skipped[0], generate_seconds=round(stats.seconds, 3),
                                              sentences_per_s=round(stats.sentences / seconds, 2),
                                              generated=stats.sentences, stopped_at_max_new_tokens=stats.at_limit)
    return (f"translated {written} record(s)" + (f", {skipped[0]} already in {output}" if resume else "")
            + f"; {stats.sentences / seconds:,.1f} sentences/s, {stats.new_tokens / seconds:,.0f} "
              f"generated tokens/s in generate" + (" (pivot: two legs)" if options.pivot else ""))


def _translate_to(output: str, sources: Iterable[dict], options: TranslateOptions, loaded, *, total: int | None,
                  append: bool, input: str, skipped: list[int]):
    """Translate `sources` into `output` (appended and synced after every chunk with `append`, else written
    atomically) under a progress bar: (the translator, for its stats; the number of records written)."""
    with contextlib.ExitStack() as stack, console.Bar("translate", total=total, unit="sentences") as bar:
        started = time.perf_counter()
        counts = {"sent": 0, "tok": 0, "rate": ""}

        def on_batch(n_sentences: int, n_tokens: int) -> None:
            counts["sent"] += n_sentences
            counts["tok"] += n_tokens
            elapsed = max(time.perf_counter() - started, 1e-9)
            counts["rate"] = f"{counts['sent'] / elapsed:,.1f} sent/s {counts['tok'] / elapsed:,.0f} tok/s"
            bar.advance(0 if options.pivot else n_sentences, rate=counts["rate"])  # pivot: two legs a record

        if options.num_gpus > 1:
            from aligninstruct_cli.translate_pool import TranslatorPool  # lazy: start-up (worker pool, ~3 ms)

            translator = stack.enter_context(TranslatorPool(options, on_batch=on_batch))
        else:
            translator = Translator(loaded, options, on_batch=on_batch)
        chunks = translator.translate_chunks(sources, pivot=options.pivot)
        writer = AppendRecordWriter(output) if append else RecordWriter(output)
        with writer as out:
            for chunk in chunks:
                for rec in chunk:
                    out.write(rec)
                if append:
                    out.sync()
                if options.pivot:
                    bar.advance(len(chunk), rate=counts["rate"])
            if out.count == 0 and not skipped[0]:  # raised inside: the atomic writer leaves no file
                raise AitError(f"{input}: no records to translate")
        return translator, out.count
