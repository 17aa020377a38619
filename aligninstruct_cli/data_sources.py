"""Real parallel data by name: OPUS-100 and FLORES-200 as parallel JSONL records.

Real users get the Hugging Face hub datasets through the `datasets` library:
- OPUS-100: `Helsinki-NLP/opus-100`, config = the pair in OPUS-100's alphabetical naming (`en-kk`),
  splits train/validation/test, rows `{"translation": {"en": ..., "kk": ...}}`; the 15 non-English pairs
  among ar, de, fr, nl, ru, zh (`de-fr`) have a test split only (the release's zero-shot test sets).
- FLORES-200: `openlanguagedata/flores_plus` (FLORES+, gated: accept its terms and log in with
  `huggingface-cli login`), config = FLORES code (`kaz_Cyrl`), splits dev/devtest, column `text`;
  sentences of two languages pair up by row.
Offline, `source` may be a local directory in either of two layouts:
- the original release tarballs: `DIR/<pair>/opus.<pair>-<split>.<lang>` (OPUS-100 v1.0; `DIR` may also be
  the release's `v1.0` folder, with `supervised/<pair>/` and `zero-shot/<pair>/` under it) and
  `DIR/<split>/<code>.<split>` (FLORES-200 `flores200_dataset/`), plain text, one sentence a line;
- a local copy of the hub repository (parquet): `DIR/<pair>/<split>-*.parquet` and
  `DIR/<split>/<code>.parquet` (or `DIR/<split>/<code>-*.parquet`).
Records stream in corpus order; ids are `<dataset>.<split>.<n>.<src>-<tgt>` (n from 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice, zip_longest
from pathlib import Path
from typing import Iterable, Iterator, Literal, Optional

from aligninstruct_cli import hub
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import known_language, read_records
from aligninstruct_cli.languages import Language, LanguagesOption, get_language
from aligninstruct_cli.options import OptionError, check_options, option, option_ref
from aligninstruct_cli.textfile import iter_lines

OPUS100_HUB_ID = "Helsinki-NLP/opus-100"
FLORES_HUB_ID = "openlanguagedata/flores_plus"
DIRECTIONS = ("en-xx", "xx-en", "both")
# FLORES+ renamed some FLORES-200 codes (Mandarin is cmn_Hans/cmn_Hant there).
FLORES_PLUS_CODES = {"zho_Hans": "cmn_Hans", "zho_Hant": "cmn_Hant"}
# OPUS-100's file names say dev, the hub says validation; FLORES says dev/devtest everywhere.
_OPUS_SPLITS = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}
_FLORES_SPLITS = ("dev", "devtest")


# OPUS-100's zero-shot test sets: every two of these (15 pairs, test split only; the training data is English-centric)
OPUS100_ZERO_SHOT = ("ar", "de", "fr", "nl", "ru", "zh")


def opus100_zero_shot_pairs() -> list[str]:
    """The release's 15 non-English pairs, named as the release and the hub name them (`ar-de`, ..., `ru-zh`)."""
    langs = sorted(OPUS100_ZERO_SHOT)
    return [f"{a}-{b}" for i, a in enumerate(langs) for b in langs[i + 1:]]


def _opus_pair(pair: str, split: str = "test") -> tuple[Language, Language, str]:
    """(source side of en-xx, target side, the release's pair name): English first for an English pair, the pair's
    first language as given for a zero-shot pair (`fr-de`: fr→de)."""
    try:
        a, b = pair.split("-")
    except ValueError:
        raise OptionError(f"{option_ref('pair')} must look like en-kk, not {pair!r}") from None
    la, lb = get_language(a), get_language(b)
    if "en" not in (la.code, lb.code):
        if la.code == lb.code or not {la.code, lb.code} <= set(OPUS100_ZERO_SHOT):
            raise OptionError(f"OPUS-100 is English-centric: {option_ref('pair')} {pair} has no English side",
                              hint="its only non-English pairs are the zero-shot test sets among "
                                   f"{', '.join(OPUS100_ZERO_SHOT)} (e.g. de-fr, --split test)")
        if split != "test":
            raise OptionError(f"OPUS-100 has no {split} split for {pair}: its non-English pairs are test sets "
                              f"only (use {option_ref('split')} test)")
        return la, lb, "-".join(sorted((la.code, lb.code)))
    xx = lb if la.code == "en" else la
    en = get_language("en")
    return en, xx, "-".join(sorted((en.code, xx.code)))  # OPUS-100 names pairs alphabetically


def _records(name: str, split: str, pairs: Iterable[tuple[str, str]], en: Language, xx: Language,
             direction: str) -> Iterator[dict]:
    for n, (en_text, xx_text) in enumerate(pairs, 1):
        if direction in ("en-xx", "both"):
            yield {"id": f"{name}.{split}.{n}.{en.code}-{xx.code}", "src_lang": en.code, "tgt_lang": xx.code,
                   "src": en_text, "tgt": xx_text}
        if direction in ("xx-en", "both"):
            yield {"id": f"{name}.{split}.{n}.{xx.code}-{en.code}", "src_lang": xx.code, "tgt_lang": en.code,
                   "src": xx_text, "tgt": en_text}


def _numbered(source: Iterable[str] | Path) -> Iterator[tuple[int, str]]:
    if isinstance(source, Path):
        return iter_lines(str(source))
    return enumerate(source, 1)


def _zip_sides(first: Iterable[str] | Path, second: Iterable[str] | Path,
               names: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """Two line-aligned sides in lockstep; different lengths or empty lines are errors."""
    for a, b in zip_longest(_numbered(first), _numbered(second)):
        if a is None or b is None:
            longer, (line_no, _) = (names[0], a) if b is None else (names[1], b)
            raise InputError(longer, line_no, f"has more lines than {names[1] if b is None else names[0]}")
        for name, (line_no, text) in zip(names, (a, b)):
            if not text.strip():
                raise InputError(name, line_no, "empty line in a line-aligned corpus")
        yield a[1], b[1]


def _load_dataset(*args, **kwargs) -> Iterator[dict]:
    """Rows of `datasets.load_dataset(..., streaming=True)`; a missing `datasets`, an unreachable hub or
    an unknown dataset/config/split becomes a clean error (streaming fails late, so rows are wrapped). A hub
    dataset must be cached or the hub reachable: checked first, in a second (no 24 s of retries)."""
    if args and args[0] != "parquet":
        hub.require(str(args[0]), what="dataset", repo_type="dataset",
                    fix=f"pass {option_ref('source')} DIR with a local copy of the release files (see docs/data.md)")
    try:
        from datasets import load_dataset  # lazy: datasets (optional)
    except ImportError:
        raise AitError("reading the hub or parquet files needs the datasets library",
                       hint="pip install 'aligninstruct-cli[data]', or pass --source with the release text files") from None
    what = " ".join(str(a) for a in args[:2])
    try:
        yield from load_dataset(*args, streaming=True, **kwargs)
    except (OSError, ValueError) as exc:  # requests/hub errors are OSErrors; bad configs ValueErrors
        raise AitError(f"cannot read {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                       hint="offline? pass --source DIR with a local copy (see docs/data.md); FLORES+ is "
                            "gated: accept its terms on the hub and `huggingface-cli login`") from None


def _parquet_rows(files: list[Path]) -> Iterator[dict]:
    yield from _load_dataset("parquet", data_files=[str(f) for f in files], split="train")


@dataclass(kw_only=True)
class SourceOptions(LanguagesOption):
    """Where `ait data` reads a corpus from, and how much of it."""

    source: Optional[str] = option(None, metavar="DIR", default_doc="the hub", help="Local directory (release text "
                                   "files or a copy of the hub repo's parquet files) instead of the Hugging Face hub.")
    direction: Literal[DIRECTIONS] = option(  # type: ignore[valid-type]
        "en-xx", help="en-xx: English (or --with) as source; xx-en: reversed; both: one record each way.")
    limit: Optional[int] = option(None, min=1, default_doc="all", help="Stop after this many records.")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(kw_only=True)
class Opus100Options(SourceOptions):
    pair: str = option(help="Language pair, e.g. en-kk (either order), or one of the 15 zero-shot test pairs among "
                            "ar, de, fr, nl, ru, zh (de-fr: its first language is the en-xx source; test split only).")
    split: Literal[tuple(_OPUS_SPLITS)] = option("train", help="train, dev (= validation) or test.")  # type: ignore[misc]


@dataclass(kw_only=True)
class Flores200Options(SourceOptions):
    lang: str = option(parse=known_language, help="FLORES-200 code (kaz_Cyrl) or ISO code (kk).")
    split: Literal[_FLORES_SPLITS] = option(  # type: ignore[valid-type]
        "devtest", help="dev or devtest (ait's default for tests: the paper does not name the FLORES-200 split).")
    with_lang: str = option("eng_Latn", flags=("--with",), parse=known_language,
                            help="The language paired with --lang (any FLORES language, for zero-shot directions).")


def opus100(pair: str | Opus100Options, split: str | None = None, **fields) -> Iterator[dict]:
    """Parallel records of one OPUS-100 pair and split, from the hub or a local directory
    (`opus100(Opus100Options(...))` or `opus100("en-kk", "test", source=DIR)`)."""
    options = pair if isinstance(pair, Opus100Options) else Opus100Options(
        pair=pair, **({"split": split} if split else {}), **fields)
    pair, split, source = options.pair, options.split, options.source
    en, xx, name = _opus_pair(pair, split)
    hub_split = _OPUS_SPLITS[split]
    file_split = "dev" if hub_split == "validation" else hub_split
    if source is None:
        rows = _load_dataset(OPUS100_HUB_ID, name, split=hub_split)
        pairs = ((r["translation"][en.code], r["translation"][xx.code]) for r in rows)
    else:
        root = Path(source)
        group = "supervised" if "en" in (en.code, xx.code) else "zero-shot"
        for base in (root / name, root / group / name, root):
            en_file, xx_file = (base / f"opus.{name}-{file_split}.{code}" for code in (en.code, xx.code))
            if en_file.exists() and xx_file.exists():
                pairs = _zip_sides(en_file, xx_file, (str(en_file), str(xx_file)))
                break
            parquet = sorted(base.glob(f"{hub_split}-*.parquet"))
            if parquet:
                pairs = ((r["translation"][en.code], r["translation"][xx.code]) for r in _parquet_rows(parquet))
                break
        else:
            raise AitError(f"{source}: no OPUS-100 {name} {split} data found",
                           hint=f"expected {name}/opus.{name}-{file_split}.{{{en.code},{xx.code}}} (or under "
                                f"{group}/) or {name}/{hub_split}-*.parquet under it")
    yield from islice(_records(f"opus100.{name}", split, pairs, en, xx, options.direction), options.limit)


def _flores_sentences(code: str, split: str, source: str | None) -> Iterable[str] | Path:
    if source is None:
        return (r["text"] for r in _load_dataset(FLORES_HUB_ID, FLORES_PLUS_CODES.get(code, code), split=split))
    root = Path(source)
    text_file = root / split / f"{code}.{split}"
    if text_file.exists():
        return text_file
    parquet = [f for name in dict.fromkeys((code, FLORES_PLUS_CODES.get(code, code)))
               for f in sorted((root / split).glob(f"{name}.parquet")) + sorted((root / split).glob(f"{name}-*.parquet"))]
    if parquet:
        return (r["text"] for r in _parquet_rows(parquet))
    raise AitError(f"{source}: no FLORES-200 {code} {split} data found",
                   hint=f"expected {split}/{code}.{split} or {split}/{code}.parquet under it")


def flores200(lang: str | Flores200Options, split: str | None = None, **fields) -> Iterator[dict]:
    """Parallel records pairing FLORES-200 `lang` with `with_lang` (English by default) by sentence
    (`flores200(Flores200Options(...))` or `flores200("kk", "devtest", source=DIR)`)."""
    options = lang if isinstance(lang, Flores200Options) else Flores200Options(
        lang=lang, **({"split": split} if split else {}), **fields)
    lang, split, with_lang, source = options.lang, options.split, options.with_lang, options.source
    xx, other = get_language(lang), get_language(with_lang)
    # Accept either code style; the file/config name is the FLORES code (zho_Hant is kept as given).
    xx_code = lang if "_" in lang else xx.flores
    other_code = with_lang if "_" in with_lang else other.flores
    a = _flores_sentences(other_code, split, source)
    b = _flores_sentences(xx_code, split, source)
    names = tuple(str(side) if isinstance(side, Path) else f"{FLORES_HUB_ID}:{code}"
                  for side, code in ((a, other_code), (b, xx_code)))
    pairs = _zip_sides(a, b, names)  # type: ignore[arg-type]
    yield from islice(_records("flores200", split, pairs, other, xx, options.direction), options.limit)


# ---------------------------------------------------------------------------------------------- your own file
FILE_DIRECTIONS = ("as-is", "reversed", "both")
_PAIR_SUFFIX = "{src}-{tgt}"


@dataclass(kw_only=True)
class FileOptions(LanguagesOption):
    direction: Literal[FILE_DIRECTIONS] = option(  # type: ignore[valid-type]
        "both", help="as-is: each record as it is; reversed: source and target swapped; both: each record, then "
        "its reverse.", details="A reversed record's id: a trailing .SRC-TGT swapped (test.7.en-kk → "
        "test.7.kk-en), else the id + .reversed.")


def reversed_record(rec: dict) -> dict:
    """`rec` with source and target (and their languages) swapped, under the id of the other direction."""
    rid, pair = str(rec["id"]), _PAIR_SUFFIX.format(src=rec["src_lang"], tgt=rec["tgt_lang"])
    new_id = (rid[:-len(pair)] + _PAIR_SUFFIX.format(src=rec["tgt_lang"], tgt=rec["src_lang"])
              if rid.endswith("." + pair) else f"{rid}.reversed")
    return {**rec, "id": new_id, "src_lang": rec["tgt_lang"], "tgt_lang": rec["src_lang"], "src": rec["tgt"],
            "tgt": rec["src"]}


def file_records(path: str, options: FileOptions | None = None) -> Iterator[dict]:
    """Your parallel file's records in `options.direction`: as they are, reversed, or both (each record then its
    reverse). A reversed record whose id is already taken by a record of the file is an error."""
    direction = (options or FileOptions()).direction
    taken: set[str] = set()  # ids written, with both directions (one pass: the input may be stdin)
    for line_no, rec in read_records(path, "parallel", with_location=True):
        if direction in ("as-is", "both"):
            if str(rec["id"]) in taken:
                raise InputError(path, line_no, f"id {rec['id']!r} is the reverse of an earlier record: the file "
                                 "holds both directions already (use direction as-is)")
            if direction == "both":
                taken.add(str(rec["id"]))
            yield rec
        if direction in ("reversed", "both"):
            back = reversed_record(rec)
            if back["id"] in taken:
                raise InputError(path, line_no, f"its reverse's id {back['id']!r} is already a record's id: the "
                                 "file holds both directions already (use direction as-is)")
            if direction == "both":
                taken.add(back["id"])
            yield back
