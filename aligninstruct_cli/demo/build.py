"""The demo's inputs: toy parallel data and an untrained tiny BLOOM whose tokenizer knows only
English and the "seen" toy language (as BLOOM's tokenizer was trained without the unseen languages)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import orjson

from aligninstruct_cli.data_sources import reversed_record
from aligninstruct_cli.demo.toylang import make_lexicon, parallel_records, relative_lexicon
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.instructions import templates
from aligninstruct_cli.io import read_records, write_records
from aligninstruct_cli.textfile import iter_lines
from aligninstruct_cli.tiny import build_tiny_bloom, train_tokenizer

SEEN, UNSEEN = "qaa", "qab"
# Sunlandic: its own lexicon, subject-object-verb. Moonlandic: a relative of Sunlandic (as Galician is
# of Portuguese): 30% of the meanings moved to other Sunlandic forms, and subject-verb-object order
# with adjectives and particles before the noun. The base model never sees Moonlandic.
SUNLANDIC = make_lexicon(101)
MOONLANDIC = relative_lexicon(SUNLANDIC, 202, changed=0.3)
LANGUAGES = {SEEN: (SUNLANDIC, "sov"), UNSEEN: (MOONLANDIC, "svo")}
# file name → (language, sentence seed offset)
FILES = {
    "seen-train.jsonl": (SEEN, 1),
    "unseen-train.jsonl": (UNSEEN, 2),
    "unseen-dev.jsonl": (UNSEEN, 3),
    "unseen-test.jsonl": (UNSEEN, 4),
}


def make_toy_data(out_dir: str | Path, *, seen: int, unseen: int, dev: int, test: int, seed: int = 0) -> dict:
    """Write the four toy corpora (English source) to `out_dir`; returns {file name: record count}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {"seen-train.jsonl": seen, "unseen-train.jsonl": unseen, "unseen-dev.jsonl": dev,
             "unseen-test.jsonl": test}
    for name, (lang, offset) in FILES.items():
        prefix = name.removesuffix(".jsonl").replace("unseen-", "") + "."  # ids: test.7.en-qab → test set "test"
        lexicon, order = LANGUAGES[lang]
        records = parallel_records(sizes[name], tgt_lang=lang, lexicon=lexicon, order=order,
                                   seed=seed * 10 + offset, id_prefix=prefix)
        if name == "unseen-test.jsonl":  # evaluate both directions, as the paper's en→xx and xx→en
            records = _both_directions(records)
        write_records(str(out / name), records)
    return sizes


def _both_directions(records: Iterable[dict]) -> Iterator[dict]:
    for rec in records:
        forward = {**rec, "id": f"{rec['id']}.{rec['src_lang']}-{rec['tgt_lang']}"}
        yield forward
        yield reversed_record(forward)


TEXT_FIELDS = ("src", "tgt", "input", "output", "text")


def corpus_texts(data: str | Path, demo_file: str = "seen-train.jsonl") -> list[str]:
    """The sentences to build a toy model (or toy COMET) from. `data`: a directory written by `ait demo
    toy-data` (its `demo_file`), or any corpus FILE: JSONL (the string fields src, tgt, input, output and
    text of each record: parallel, instruction or plain-text records), TSV or `src ||| tgt` (both sides), or
    plain text (one sentence a line); `.gz` works too."""
    path = Path(data)
    if path.is_dir():
        if not (path / demo_file).is_file():
            raise AitError(f"{data}: no {demo_file} in this directory",
                           hint="give the directory `ait demo toy-data` wrote, or a corpus FILE (JSONL, TSV, text)")
        return [t for r in read_records(str(path / demo_file), "parallel") for t in (r["src"], r["tgt"])]
    texts: list[str] = []
    for line_no, line in iter_lines(str(data), skip_blank=True):
        if line.lstrip().startswith("{"):
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(str(data), line_no, f"malformed JSON: {exc}") from None
            texts += [rec[f] for f in TEXT_FIELDS if isinstance(rec, dict) and isinstance(rec.get(f), str)]
        elif "\t" in line:
            texts += line.split("\t")
        elif " ||| " in line:
            texts += line.split(" ||| ")
        else:
            texts.append(line)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise AitError(f"{data}: no sentences in this file")
    return texts


def make_toy_model(data: str | Path, out_dir: str | Path, *, vocab_size: int = 2000, hidden_size: int = 128,
                   n_layer: int = 2, n_head: int = 4, seed: int = 0) -> Path:
    """Train the tokenizer on the corpus (`corpus_texts`: for the demo's directory, English + the seen toy
    language) + the prompt templates, save a randomly initialised tiny BLOOM with it to `out_dir`."""
    prompt_text = [getattr(templates, name) for name in dir(templates) if name.isupper()
                   and isinstance(getattr(templates, name), str)]
    texts = corpus_texts(data) + prompt_text * 50
    tokenizer = train_tokenizer(texts, out_dir, vocab_size=vocab_size)
    build_tiny_bloom(out_dir, tokenizer, hidden_size=hidden_size, n_layer=n_layer, n_head=n_head, seed=seed)
    return Path(out_dir)
