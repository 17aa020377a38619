"""The record types every stage reads and writes, and their validation.

Records are plain dicts (fast to build, orjson-serialisable). `validate_<kind>` checks one record and
raises `RecordError(field=...)`; the reader in `io.py` adds the file and line. Extra fields are kept
untouched, so users may carry their own metadata through the chain. Formats are documented with examples
in docs/formats.md; `SCHEMA_VERSION` changes whenever a field changes meaning.
"""

from __future__ import annotations

from typing import Any, Callable, TypedDict

from aligninstruct_cli.errors import RecordError
from aligninstruct_cli.languages import CHECKED_CODES, find_language, suggest_language

SCHEMA_VERSION = 1

# A generous bound on the characters one token spans (real tokens: a few; the longest vocabulary entries,
# runs of spaces or symbols, a few dozen): a text of N tokens has at most N × this many characters, so a
# longer one is rejected (or cut) before a tokenizer sees it (`io.char_budget`).
MAX_CHARS_PER_TOKEN = 64

OBJECTIVES = ("mt", "align", "hint", "revise", "mono-full", "mono-half")
# The objective of instruction data from other tools (alpaca, messages, ShareGPT records) that `ait train`
# reads beside ait's own: general instructions, mixed in e.g. against forgetting. No ait stage builds it.
GENERAL = "general"
TRAIN_OBJECTIVES = OBJECTIVES + (GENERAL,)
# `ait train --data-format`: ait's instruction records, or another tool's (converted when read)
DATA_FORMATS = ("auto", "ait", "alpaca", "messages", "sharegpt")


class ParallelRecord(TypedDict):
    id: str
    src_lang: str
    tgt_lang: str
    src: str
    tgt: str


class AlignedPair(TypedDict):
    src: str  # the span's text: the sentence's own substring (else its tokens joined by one space)
    tgt: str
    src_span: list[int]  # [start, end) over src_tokens
    tgt_span: list[int]
    score: float


class AlignedRecord(ParallelRecord):
    src_tokens: list[str]
    tgt_tokens: list[str]
    links: list[list[int]]  # [i, j]: src_tokens[i] aligned to tgt_tokens[j]
    pairs: list[AlignedPair]


class InstructionRecord(TypedDict):
    id: str
    objective: str  # one of OBJECTIVES
    src_lang: str
    tgt_lang: str
    input: str
    output: str
    source_id: str


Record = dict[str, Any]


def _text(rec: Record, field: str, *, allow_empty: bool = False) -> str:
    value = rec.get(field)
    # Fast path first (every record of every stage passes here); `isspace` is what `strip` strips.
    if type(value) is str and (allow_empty or (value and not value.isspace())):
        return value
    if field not in rec:
        raise RecordError("missing", field=field)
    if not isinstance(value, str):
        raise RecordError(f"expected a string, got {type(value).__name__}", field=field)
    if not allow_empty and not value.strip():
        raise RecordError("empty", field=field)
    return value


def _ident(rec: Record, field: str = "id") -> None:
    value = rec.get(field)
    if (type(value) is str and value) or type(value) is int:
        return
    if field not in rec:
        raise RecordError("missing", field=field)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise RecordError("expected a non-empty string or integer", field=field)


def _lang(rec: Record, field: str) -> None:
    code = rec.get(field)
    if type(code) is str and code in CHECKED_CODES:
        return
    code = _text(rec, field)
    if find_language(code) is None:
        raise RecordError(f"unknown language {code!r}", field=field, hint=suggest_language(code))
    if len(CHECKED_CODES) < 10_000:
        CHECKED_CODES.add(code)


def _source_fields(rec: Record) -> None:
    if not isinstance(rec, dict):
        raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
    _ident(rec)
    _lang(rec, "src_lang")
    _lang(rec, "tgt_lang")
    _text(rec, "src")


def validate_source(rec: Record) -> Record:
    """A record to translate: id, src_lang, tgt_lang, src (tgt optional: the reference)."""
    _source_fields(rec)
    if "tgt" in rec:
        _text(rec, "tgt")
    return rec


def validate_parallel(rec: Record) -> Record:
    _source_fields(rec)
    _text(rec, "tgt")
    return rec


def _int_list(value: Any, field: str, length: int) -> list[int]:
    if not isinstance(value, list) or len(value) != length or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise RecordError(f"expected a list of {length} integers", field=field)
    return value


def validate_aligned(rec: Record) -> Record:
    validate_parallel(rec)
    lengths = {}
    for side in ("src_tokens", "tgt_tokens"):
        toks = rec.get(side)
        if not isinstance(toks, list) or not toks or not all(isinstance(t, str) and t for t in toks):
            raise RecordError("expected a non-empty list of non-empty strings", field=side)
        lengths[side] = len(toks)
    links = rec.get("links")
    if not isinstance(links, list):
        raise RecordError("expected a list of [i, j] pairs", field="links")
    for link in links:
        i, j = _int_list(link, "links", 2)
        if not (0 <= i < lengths["src_tokens"] and 0 <= j < lengths["tgt_tokens"]):
            raise RecordError(f"link {link} is outside the token lists", field="links")
    pairs = rec.get("pairs")
    if not isinstance(pairs, list):
        raise RecordError("expected a list of pair objects", field="pairs")
    for k, pair in enumerate(pairs):
        where = f"pairs[{k}]"
        if not isinstance(pair, dict):
            raise RecordError("expected an object", field=where)
        for side, tok_field in (("src", "src_tokens"), ("tgt", "tgt_tokens")):
            start, end = _int_list(pair.get(f"{side}_span"), f"{where}.{side}_span", 2)
            if not 0 <= start < end <= lengths[tok_field]:
                raise RecordError(f"span [{start}, {end}) is outside {tok_field}", field=f"{where}.{side}_span")
            text = pair.get(side)
            if not isinstance(text, str) or not text:
                raise RecordError("expected a non-empty string", field=f"{where}.{side}")
        if not isinstance(pair.get("score"), (int, float)):
            raise RecordError("expected a number", field=f"{where}.score")
    return rec


def validate_instruction(rec: Record) -> Record:
    if not isinstance(rec, dict):
        raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
    _ident(rec)
    objective = _text(rec, "objective")
    if objective not in TRAIN_OBJECTIVES:
        raise RecordError(f"unknown objective {objective!r} (expected one of {', '.join(TRAIN_OBJECTIVES)})",
                          field="objective")
    for field in ("src_lang", "tgt_lang"):  # general instructions need not be in any one language
        if objective != GENERAL or field in rec:
            _lang(rec, field)
    _text(rec, "input")
    _text(rec, "output")
    _ident(rec, "source_id")
    return rec


def validate_hypothesis(rec: Record) -> Record:
    """A translated record: a source record plus `hyp` (may be empty: models do output nothing)."""
    validate_source(rec)
    _text(rec, "hyp", allow_empty=True)
    return rec


# ---------------------------------------------------------------------------------- other tools' formats
_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
          "model": "assistant"}
_TURNS = {"messages": ("messages", "role", "content"), "sharegpt": ("conversations", "from", "value")}


def detect_data_format(rec: Any) -> str:
    """Which format a training record is in: `messages` (a list of role/content turns), `sharegpt`
    (`conversations` of from/value turns), `alpaca` (instruction/input/output) or `ait`."""
    if isinstance(rec, dict):
        if "messages" in rec:
            return "messages"
        if "conversations" in rec:
            return "sharegpt"
        if "instruction" in rec and "objective" not in rec:
            return "alpaca"
    return "ait"


def _single_turn(rec: Record, fmt: str) -> tuple[str, str]:
    """(input, output) of a one-turn conversation: an optional system turn (or a top-level `system`, as
    LLaMA-Factory's ShareGPT has), one user turn, one assistant turn. The system text goes before the
    user's, a blank line between."""
    field, role_key, content_key = _TURNS[fmt]
    turns = rec.get(field)
    if not isinstance(turns, list) or not turns:
        raise RecordError("expected a non-empty list of turns", field=field)
    roles, texts = [], []
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"expected an object with {role_key!r} and {content_key!r}", field=f"{field}[{k}]")
        role = _ROLES.get(str(turn.get(role_key)).lower()) if isinstance(turn.get(role_key), str) else None
        if role is None:
            raise RecordError(f"unknown role {turn.get(role_key)!r} (expected system, user or assistant"
                              + (", or human, gpt)" if fmt == "sharegpt" else ")"), field=f"{field}[{k}].{role_key}")
        roles.append(role)
        try:
            texts.append(_text(turn, content_key, allow_empty=role == "system"))
        except RecordError as exc:
            raise RecordError(exc.message, field=f"{field}[{k}].{content_key}") from None
    system = [texts.pop(0)] if roles[0] == "system" else []
    roles = roles[len(system):]
    if roles != ["user", "assistant"]:
        raise RecordError(f"expected one user turn then one assistant turn (after an optional system turn), got "
                          f"{' → '.join(roles) or 'none'}", field=field,
                          hint="ait trains one input → output pair a record: split multi-turn conversations")
    top = rec.get("system")
    if top is not None:
        system = [_text(rec, "system", allow_empty=True)] + system
    prefix = "\n\n".join(t for t in system if t.strip())
    return (prefix + "\n\n" + texts[0] if prefix else texts[0]), texts[1]


def instruction_from(rec: Any, fmt: str, ordinal: int) -> Record:
    """An ait instruction record from another tool's training record (`fmt`: alpaca, messages, sharegpt;
    `ait` records are returned as they are): objective `general`, the input and output the tool would train
    on, id the record's own `id` or else `ordinal` (its 1-based position in the file); `src_lang`/`tgt_lang`
    kept when the record has them. An alpaca input is `instruction`, then a newline and `input` when it has
    one (LLaMA-Factory's layout), after an optional `system`."""
    if fmt == "ait":
        return rec
    if not isinstance(rec, dict):
        raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
    if fmt == "alpaca":
        instruction = _text(rec, "instruction")
        extra = _text(rec, "input", allow_empty=True) if "input" in rec else ""
        output = _text(rec, "output")
        history = rec.get("history")
        if history:
            raise RecordError("multi-turn alpaca records are not supported", field="history",
                              hint="ait trains one input → output pair a record: give each turn its own record")
        text = instruction + ("\n" + extra if extra.strip() else "")
        system = _text(rec, "system", allow_empty=True) if "system" in rec else ""
        text = system + "\n\n" + text if system.strip() else text
    elif fmt in _TURNS:
        text, output = _single_turn(rec, fmt)
    else:
        raise RecordError(f"unknown data format {fmt!r} (expected one of {', '.join(DATA_FORMATS)})")
    own_id = rec.get("id")
    ident = own_id if (type(own_id) is str and own_id) or type(own_id) is int else ordinal
    out: Record = {"id": ident, "objective": GENERAL, "input": text, "output": output, "source_id": ident,
                   "format": fmt}
    for field in ("src_lang", "tgt_lang"):
        if field in rec:
            out[field] = rec[field]
    return out


VALIDATORS: dict[str, Callable[[Record], Record]] = {
    "source": validate_source,
    "parallel": validate_parallel,
    "aligned": validate_aligned,
    "instruction": validate_instruction,
    "hypothesis": validate_hypothesis,
    "any": lambda rec: rec,
}


def record_converter(data_format: str):
    """`io.read_records`' `convert` for `--data-format`: another tool's records (alpaca, messages, ShareGPT)
    into instruction records (`instruction_from`); `auto` takes the format of the file's first
    record (`detect_data_format`) for all of them; None for ait's own records."""
    if data_format == "ait":
        return None
    chosen: list[str] = [] if data_format == "auto" else [data_format]

    def convert(rec: Any, ordinal: int) -> Any:
        if not chosen:
            chosen.append(detect_data_format(rec))
        return instruction_from(rec, chosen[0], ordinal)

    return convert
