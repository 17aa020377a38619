"""Instruction records for each objective of the paper, built from parallel or aligned records.

`build_instructions(records, objective, ...)` streams instruction records
`{id, objective, src_lang, tgt_lang, input, output, source_id}`; the prompts are the constants of
`templates.py`. Rules (docs/build.md states them for users):

- Directions. The "English" side Y of a record is the side whose language is English; when neither side
  is English, the record's `src` side is Y. `en-xx` makes Y→X records, `xx-en` X→Y, `both` (the paper's
  48 directions) both, Y→X first. Language codes in the output are canonical ISO codes (`languages.py`).
- Ids: `{source_id}:{objective}:{src}-{tgt}:{k}`, k counting the records one source record gives for
  that objective and direction, from 0.
- Sentences are stripped of surrounding whitespace. Gold span texts are the pair's `src` / `tgt`
  strings; spans made here (negatives, revise) are quoted like `ait align` quotes them: the sentence's
  own substring when the tokens are found in it in order, else the tokens joined by one space.
- Pair selection (align, hint, revise): pairs repeating an earlier pair's two strings are dropped, then
  `pairs_per_sentence` keeps the highest-scoring pairs (ties: first in the record); its default `auto` is
  1 for align (the paper's "one gold word pair" per sentence pair) and all for hint and revise.
- align: one record per selected pair and direction, True (the gold pair) or False (a misaligned
  variant). Per sentence, M = selected pairs x directions records; a running credit adds
  M x negatives / (1 + negatives) (exact fractions) and the sentence gets its whole part as False
  records, chosen uniformly among its M by the record's generator, so the False:True ratio is exact over
  the stream. By default (both directions, one pair, ratio 1) that is one True and one False record per
  sentence pair, the False direction drawn per record: the paper's equal shares.
  A False record swaps one side (chosen uniformly) for another span of the same sentence: a span of
  another gold pair, or any contiguous span as long as the swapped one, chosen uniformly among those
  that are not aligned to the kept side. "Not aligned" means no link joins ANY occurrence of the one
  span's words to ANY occurrence of the other's (the assertion is about strings, so repeated words
  count) and the two strings are not a gold pair's strings. Punctuation-only spans are never swapped in.
  When no span of the sentence qualifies (short, densely aligned sentences), the swapped-in span is a
  gold pair side of an EARLIER record in the same language, drawn uniformly from a bounded reservoir
  (`revise_pool` spans per language, as revise's), under the same rules; counted. Where that fails too
  (the first records of a stream, before any span of the language was seen) the record stays True;
  counted.
- hint: the selected pairs, highest score first, that do not overlap a better pair's span on either
  side, up to `max_hints`, listed in target order.
- revise: one record per direction. One selected pair's target span is replaced by a word group of the
  same language drawn uniformly from a bounded reservoir (`revise_pool` groups per language, reservoir
  sampling over every pair side seen in EARLIER records, so memory stays bounded and the first records of
  a stream may find the reservoir empty: they are counted). The replacement never equals the original
  string. Where the tokens can be found in order in the sentence the replacement keeps the sentence's
  own spacing; otherwise the sentence is rebuilt from tokens joined by spaces.
- mono-half / mono-full: one record per side whose language is unseen by BLOOM (the direction option does
  not apply; src_lang = tgt_lang = that language). mono-half splits the N whitespace-separated words at
  l = floor(N / 2): the input ends with words 1..l joined by single spaces, the output is words l+1..N;
  a sentence with a single whitespace word (scripts written without spaces) is split the same way by
  characters (l = floor(C / 2)); a sentence of one character is counted as unusable. mono-full gives no
  context (`MONO_FULL_INPUT`) and the whole sentence as output.
- Every input record that yields no record for a direction is counted by reason in `BuildStats`.
- Randomness: per source record, `random.Random(f"{seed}:{objective}:{source_id}")`, so a record's
  output does not depend on its neighbours, except where the stream matters: the reservoirs (seeded by
  `seed` once) and align's False-count credit (which only matters when a sentence's share is fractional,
  e.g. one direction with ratio 1: its sentences alternate True and False).
"""

from __future__ import annotations

import math
import random
from collections import Counter
import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, Literal, NamedTuple, Union

from aligninstruct_cli.align.spans import is_punct
from aligninstruct_cli.instructions import templates as T
from aligninstruct_cli.io import ReadOptions
from aligninstruct_cli.languages import Language, bloom_seen, get_language
from aligninstruct_cli.options import OptionError, option, option_ref
from aligninstruct_cli.records import OBJECTIVES, Record

DIRECTIONS = ("both", "en-xx", "xx-en")
# The record kind each objective reads (records.VALIDATORS): alignment-based ones need `ait align` output.
INPUT_KIND = {"mt": "parallel", "mono-full": "parallel", "mono-half": "parallel",
              "align": "aligned", "hint": "aligned", "revise": "aligned"}
DEFAULT_NEGATIVES = 1.0  # one False per True: the paper's True "(or False)" with equal probability
DEFAULT_REVISE_POOL = 10_000
_RESERVOIR_TRIES = 16  # random draws from a reservoir before scanning it for a span that qualifies
NO_GOLD_PAIR = "no gold pair in `pairs`"


@dataclass
class BuildStats:
    """What a build did: records read and written, and why some gave nothing (reason -> count)."""

    objective: str = ""
    records_in: int = 0
    records_out: int = 0
    unusable: Counter = field(default_factory=Counter)
    sentences_without_pairs: int = 0
    outputs: Counter = field(default_factory=Counter)  # align: records by output (True / False)
    negatives_from_other_sentences: int = 0  # align: False records whose swapped-in span came from the reservoir
    negatives_missing: int = 0  # align: records meant to be False that stayed True (no span qualified)

    def report(self) -> list[str]:
        """Warnings: what gave no record, and False records that could not be made."""
        lines = []
        for reason, count in sorted(self.unusable.items()):
            if reason == NO_GOLD_PAIR:
                lines.append(f"{self.objective}: {self.sentences_without_pairs:,} of {self.records_in:,} sentence "
                             f"pair(s) have no gold pair: no record made {count:,} time(s) (one per direction)")
            else:
                lines.append(f"{self.objective}: no record made {count:,} time(s) (per record and direction, of "
                             f"{self.records_in:,} input records): {reason}")
        if self.negatives_missing:
            lines.append(f"{self.objective}: {self.negatives_missing:,} record(s) meant to be False stayed True: no "
                         "span qualified, in their sentence or among the earlier sentences' spans of that language "
                         "(the start of a stream)")
        return lines

    def summary(self) -> list[str]:
        """Information: records by output, and the fallbacks that kept the False share."""
        lines = []
        if self.outputs:
            total = sum(self.outputs.values())
            true = self.outputs.get(T.ALIGN_TRUE, 0)
            lines.append(f"{self.objective}: {total:,} record(s): {true:,} True ({100 * true / total:.1f}%), "
                         f"{self.outputs.get(T.ALIGN_FALSE, 0):,} False")
        if self.negatives_from_other_sentences:
            lines.append(f"{self.objective}: {self.negatives_from_other_sentences:,} False record(s) swap in a span "
                         "of an earlier sentence of the same language (none of their own sentence qualified)")
        return lines


class _Orientation(NamedTuple):
    flip: bool  # True: the record's tgt side is the instruction's source
    src: Language
    tgt: Language
    tag: str  # "en-kk"


class _Pair(NamedTuple):
    """A gold pair in the orientation of one direction: s_* on the instruction's source side."""

    s_start: int
    s_end: int
    t_start: int
    t_end: int
    s_text: str
    t_text: str
    score: float
    index: int  # position in the record's `pairs`


class _Keep(dict):
    """format_map mapping that leaves every placeholder as it was (undoes the {{ }} escaping)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _bind(template: str, src_name: str, tgt_name: str) -> str:
    """`template` with the language names filled in and the other placeholders left for `format`."""
    esc = {"{": "{{", "}": "}}"}
    return (template.replace("{src_name}", src_name.translate(str.maketrans(esc)))
            .replace("{tgt_name}", tgt_name.translate(str.maketrans(esc))))


def _pairs_per_sentence_option(value: Any) -> int | str:
    """A whole number of at least 1 (or its text), `all`, or `auto` (the objective's default)."""
    if isinstance(value, str) and value.strip().lower() in ("all", "auto"):
        return value.strip().lower()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise OptionError(f"{option_ref('pairs_per_sentence')} must be a whole number of at least 1, or all, "
                      f"not {value!r}")


@dataclass(kw_only=True)
class BuildOptions(ReadOptions):
    """The options of `ait build` (and of `build_instructions` / `InstructionBuilder`)."""

    objective: Literal[OBJECTIVES] = option(  # type: ignore[valid-type]
        "mt", help="Instruction type (mt = MTInstruct, the baseline).",
        details="mt, mono-full and mono-half read parallel records; align, hint and revise read aligned records "
                "(the output of `ait align`).")
    direction: Literal[DIRECTIONS] = option(  # type: ignore[valid-type]
        "both", help="both: each pair gives en→xx and xx→en records (ait's reading: the paper trains and tests "
        "both directions but does not say each pair gives both); en-xx or xx-en: one of them. Without English "
        "in a pair, its src side plays English. Ignored by mono-*.",
        details="See [Directions](#directions).")
    seed: int = option(0, help="Random seed; the same seed gives the same output bytes.",
                       details="It seeds align's True/False draw and its negatives, and the revise choices (see "
                               "[Randomness](#randomness)).")
    negatives: float = option(
        DEFAULT_NEGATIVES, min=0, help="align: False records per True record; each record is one or the other "
        "(1 = the paper's equal shares; 0.5 = one False for every two True; 0 = all True).",
        details="Realised exactly over the stream: with both directions and ratio 1 every sentence pair gives "
                "one True and one False record. See [Objectives](#objectives).")
    pairs_per_sentence: Union[int, Literal["all", "auto"]] = option(
        "auto", parse=_pairs_per_sentence_option, cli_type=str, metavar="N",
        default_doc="1 for align, all for hint and revise",
        help="align/hint/revise: use at most this many gold pairs per sentence (the highest-scoring), or all. "
        "align: each gives one record per direction; the default 1 is the paper's one gold pair per sentence pair.",
        details="`auto` (the default in a config file) means the objective's default.")
    max_hints: int = option(T.MAX_HINTS, min=1, help="hint: at most this many alignment hints per record (the "
                            "paper's S = 5), none overlapping another.")
    revise_pool: int = option(DEFAULT_REVISE_POOL, min=1, help="revise and align: word groups kept per language "
                              "(a uniform reservoir over the stream so far) to draw revise's replacements from, and "
                              "align's False spans for sentences that have none of their own.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(self.negatives):
            raise OptionError(f"{option_ref('negatives')} must be a finite number, not {self.negatives}")
        if INPUT_KIND[self.objective] == "aligned" and self.input_format in ("tsv", "fast_align"):
            raise OptionError(f"{option_ref('objective')} {self.objective} needs aligned JSONL records (run `ait align` "
                              f"first), not {self.input_format} input")


class InstructionBuilder:
    """Turns one source record into its instruction records (call it per record, in stream order).

    `InstructionBuilder(options)` or `InstructionBuilder("align", negatives=0.5, ...)` (BuildOptions fields)."""

    def __init__(self, options: BuildOptions | str, *, stats: BuildStats | None = None, **fields):
        if not isinstance(options, BuildOptions):
            options = BuildOptions(objective=options, **fields)
        elif fields:
            options = dataclasses.replace(options, **fields)
        objective = options.objective
        self.options = options
        self.objective = objective
        self.direction = options.direction
        self.seed = options.seed
        self.negatives = options.negatives
        per_sentence = options.pairs_per_sentence
        if per_sentence == "auto":
            per_sentence = 1 if objective == "align" else "all"
        self.pairs_per_sentence: int | None = None if per_sentence == "all" else per_sentence
        self.max_hints = options.max_hints
        self.revise_pool = options.revise_pool
        self._seen = bloom_seen().codes  # mono-*: BLOOM's list, with a user file's `seen` column
        self.stats = stats if stats is not None else BuildStats()
        self.stats.objective = objective
        self._plans: dict[tuple[str, str], list[_Orientation]] = {}
        self._templates: dict[tuple[str, str], str] = {}
        self._mt_plans: dict[tuple[str, str], list[tuple[bool, str, str, str, str, str]]] = {}
        self._split: dict[tuple[str, str, str], tuple[str, str]] = {}
        # Exact arithmetic, so that e.g. 0.1 gives exactly one False per ten True records.
        ratio = Fraction(repr(float(self.negatives)))
        self._false_share = ratio / (1 + ratio)
        self._false_credit = Fraction(0)
        # Word groups of earlier records per language: revise's replacements (texts), align's fallback
        # False spans ((text, tokens)). Each objective has its own builder, so one reservoir serves both.
        self._reservoir = Reservoir(self.revise_pool, random.Random(f"{self.seed}:{objective}-reservoir"))
        self._make: Callable[[Record], list[Record]] = {
            "mt": self._mt, "align": self._align, "hint": self._hint, "revise": self._revise,
            "mono-full": self._mono, "mono-half": self._mono}[objective]

    def __call__(self, record: Record) -> list[Record]:
        self.stats.records_in += 1
        out = self._make(record)
        self.stats.records_out += len(out)
        return out

    # ------------------------------------------------------------------------------------- helpers
    def _directions(self, record: Record) -> list[_Orientation]:
        key = (record["src_lang"], record["tgt_lang"])
        plan = self._plans.get(key)
        if plan is None:
            src, tgt = get_language(key[0]), get_language(key[1])
            english_is_tgt = tgt.code == "en" and src.code != "en"
            forward = _Orientation(english_is_tgt, *((tgt, src) if english_is_tgt else (src, tgt)), "")
            backward = _Orientation(not forward.flip, forward.tgt, forward.src, "")
            chosen = {"both": [forward, backward], "en-xx": [forward], "xx-en": [backward]}[self.direction]
            plan = [d._replace(tag=f"{d.src.code}-{d.tgt.code}") for d in chosen]
            self._plans[key] = plan
        return plan

    def _template(self, template: str, d: _Orientation) -> str:
        key = (template, d.tag)
        bound = self._templates.get(key)
        if bound is None:
            bound = self._templates[key] = _bind(template, d.src.name, d.tgt.name)
        return bound

    def _record(self, record: Record, d: _Orientation, k: int, input_text: str, output: str) -> Record:
        return {"id": f"{record['id']}:{self.objective}:{d.tag}:{k}", "objective": self.objective,
                "src_lang": d.src.code, "tgt_lang": d.tgt.code, "input": input_text, "output": output,
                "source_id": record["id"]}

    def _rng(self, record: Record) -> random.Random:
        return random.Random(f"{self.seed}:{self.objective}:{record['id']}")

    def _selected_pairs(self, record: Record) -> list[int]:
        """Indices of the pairs this build uses, in record order (highest scores under the cap); a pair
        whose two strings repeat an earlier pair's is dropped (it would repeat the same assertion)."""
        pairs = record["pairs"]
        seen: set[tuple[str, str]] = set()
        index = []
        for i, p in enumerate(pairs):
            key = (p["src"], p["tgt"])
            if key not in seen:
                seen.add(key)
                index.append(i)
        cap = self.pairs_per_sentence
        if cap is not None and len(index) > cap:
            index = sorted(sorted(index, key=lambda i: -pairs[i]["score"])[:cap])
        return index

    @staticmethod
    def _oriented(record: Record, d: _Orientation, indices: list[int]) -> list[_Pair]:
        out = []
        for i in indices:
            p = record["pairs"][i]
            (ss, se), (ts, te) = p["src_span"], p["tgt_span"]
            if d.flip:
                out.append(_Pair(ts, te, ss, se, p["tgt"], p["src"], p["score"], i))
            else:
                out.append(_Pair(ss, se, ts, te, p["src"], p["tgt"], p["score"], i))
        return out

    @staticmethod
    def _sides(record: Record, d: _Orientation) -> tuple[str, str]:
        if d.flip:
            return record["tgt"].strip(), record["src"].strip()
        return record["src"].strip(), record["tgt"].strip()

    # ------------------------------------------------------------------------------------- mt
    def _mt(self, record: Record) -> list[Record]:
        # The hot path (>= 100k records/s): everything that depends only on the language pair is
        # cached, and the input is built by concatenation (several times faster than str.format on
        # long non-ASCII strings).
        plan = self._mt_plans.get((record["src_lang"], record["tgt_lang"]))
        if plan is None:
            plan = self._mt_plan(record)
        src, tgt, rid = record["src"].strip(), record["tgt"].strip(), record["id"]
        return [{"id": f"{rid}{suffix}", "objective": "mt", "src_lang": s_code, "tgt_lang": t_code,
                 "input": head + (tgt if flip else src) + tail, "output": src if flip else tgt,
                 "source_id": rid}
                for flip, suffix, s_code, t_code, head, tail in plan]

    def _mt_plan(self, record: Record) -> list[tuple[bool, str, str, str, str, str]]:
        plan = []
        for d in self._directions(record):
            head, tail = self._split_template(T.MT_INPUT, d, "{src}")
            plan.append((d.flip, f":mt:{d.tag}:0", d.src.code, d.tgt.code, head, tail))
        self._mt_plans[(record["src_lang"], record["tgt_lang"])] = plan
        return plan

    def _split_template(self, template: str, d: _Orientation, placeholder: str) -> tuple[str, str]:
        key = (template, d.tag, placeholder)
        parts = self._split.get(key)
        if parts is None:
            bound = self._template(template, d).format_map(_Keep())
            head, sep, tail = bound.partition(placeholder)
            assert sep and placeholder not in tail, "the placeholder must occur exactly once"
            parts = self._split[key] = (head, tail)
        return parts

    def _gold_pairs(self, record: Record) -> tuple[list[int], list]:
        """The selected gold pairs' indices and the record's directions; a record without any gold pair
        is counted as unusable for every direction it would have given."""
        indices = self._selected_pairs(record)
        directions = self._directions(record)
        if not indices:
            self.stats.sentences_without_pairs += 1
            self.stats.unusable[NO_GOLD_PAIR] += len(directions)
        return indices, directions

    # ------------------------------------------------------------------------------------- align
    def _align(self, record: Record) -> list[Record]:
        indices, directions = self._gold_pairs(record)
        if not indices:
            return []
        rng = self._rng(record)
        n_records = len(indices) * len(directions)
        false_at = set(rng.sample(range(n_records), self._false_count(n_records)))
        out = []
        for n_direction, d in enumerate(directions):
            sentence = _AlignSentence(record, d, self._oriented(record, d, list(range(len(record["pairs"])))))
            template = self._template(T.ALIGN_INPUT, d)
            for k, pair in enumerate(self._oriented(record, d, indices)):
                spans = None
                if n_direction * len(indices) + k in false_at:
                    spans = self._false_spans(sentence, pair, d, rng)
                output = T.ALIGN_FALSE if spans else T.ALIGN_TRUE
                src_span, tgt_span = spans or (pair.s_text, pair.t_text)
                self.stats.outputs[output] += 1
                out.append(self._record(record, d, k, template.format(
                    src=sentence.s_text, tgt=sentence.t_text, src_span=src_span, tgt_span=tgt_span), output))
        self._remember_word_groups(record, with_tokens=True)
        return out

    def _false_count(self, n_records: int) -> int:
        """How many of a sentence's `n_records` align records are False: the whole part of a running
        credit, so that the False share is exact over the stream."""
        self._false_credit += n_records * self._false_share
        n_false = min(n_records, int(self._false_credit))
        self._false_credit -= n_false
        return n_false

    def _false_spans(self, sentence: "_AlignSentence", pair: _Pair, d: _Orientation,
                     rng: random.Random) -> tuple[str, str] | None:
        """The (src, tgt) span texts of a False assertion made from `pair`: a span of the same sentence
        swapped in, else one of an earlier sentence (the reservoir); None (counted) when neither qualifies."""
        made = negative_spans(sentence.s_tokens, sentence.t_tokens, sentence.links, pair, sentence.pairs,
                              sentence.gold_texts, 1, rng, sentence.taken, sentence.s_span_text,
                              sentence.t_span_text)
        if made:
            return made[0]
        first = rng.randrange(2)
        for side in (first, 1 - first):
            found = sentence.foreign_negative(pair, side, self._reservoir.pool(d.tgt.code if side else d.src.code),
                                              rng)
            if found:
                self.stats.negatives_from_other_sentences += 1
                return found
        self.stats.negatives_missing += 1
        return None

    # ------------------------------------------------------------------------------------- hint
    def _hint(self, record: Record) -> list[Record]:
        indices, directions = self._gold_pairs(record)
        if not indices:
            return []
        indices = self._hint_pairs(record, indices)
        out = []
        for d in directions:
            oriented = sorted(self._oriented(record, d, indices), key=lambda p: (p.t_start, p.s_start))
            hints = "\n".join(T.HINT_LINE.format(tgt_span=p.t_text, src_span=p.s_text) for p in oriented)
            s_text, t_text = self._sides(record, d)
            out.append(self._record(record, d, 0, self._template(T.HINT_INPUT, d).format(
                hints=hints, src=s_text), t_text))
        return out

    def _hint_pairs(self, record: Record, indices: list[int]) -> list[int]:
        """Up to `max_hints` of `indices`, highest score first (ties: first in the record), leaving out any
        pair whose span overlaps a better pair's on either side (no hint repeats part of another)."""
        pairs = record["pairs"]
        kept: list[int] = []
        for i in sorted(indices, key=lambda i: -pairs[i]["score"]):
            if any(_overlap(pairs[i]["src_span"], pairs[j]["src_span"])
                   or _overlap(pairs[i]["tgt_span"], pairs[j]["tgt_span"]) for j in kept):
                continue
            kept.append(i)
            if len(kept) == self.max_hints:
                break
        return kept

    # ------------------------------------------------------------------------------------- revise
    def _revise(self, record: Record) -> list[Record]:
        indices, directions = self._gold_pairs(record)
        if not indices:
            return []
        rng = self._rng(record)
        out = []
        for d in directions:
            pool = self._reservoir.pool(d.tgt.code)
            if not pool:
                self.stats.unusable["no replacement word group seen yet for the target language "
                                    "(start of the stream)"] += 1
                continue
            pair = self._oriented(record, d, [rng.choice(indices)])[0]
            s_text, t_text = self._sides(record, d)
            t_tokens = record["src_tokens"] if d.flip else record["tgt_tokens"]
            span_text = SpanText(t_text, t_tokens)
            right = span_text(pair.t_start, pair.t_end)
            wrong = draw_where(pool, lambda group: group != right, rng)
            if wrong is None:
                self.stats.unusable["no replacement word group different from the original"] += 1
                continue
            corrupted = span_text.replace(pair.t_start, pair.t_end, wrong)
            out.append(self._record(record, d, 0, self._template(T.REVISE_INPUT, d).format(
                src=s_text, tgt=corrupted), T.REVISE_OUTPUT.format(wrong=wrong, right=right)))
        self._remember_word_groups(record)
        return out

    def _remember_word_groups(self, record: Record, with_tokens: bool = False) -> None:
        """Every pair side of `record` into the reservoir of its language: the text, or (text, tokens)."""
        for side, lang_field in (("src", "src_lang"), ("tgt", "tgt_lang")):
            code = get_language(record[lang_field]).code
            tokens = record[f"{side}_tokens"]
            for p in record["pairs"]:
                if with_tokens:
                    start, end = p[f"{side}_span"]
                    self._reservoir.add(code, (p[side], tokens[start:end]))
                else:
                    self._reservoir.add(code, p[side])

    # ------------------------------------------------------------------------------------- mono
    def _mono(self, record: Record) -> list[Record]:
        rid = record["id"]
        out = []
        for side, lang_field in (("src", "src_lang"), ("tgt", "tgt_lang")):
            lang = get_language(record[lang_field])
            if lang.code in self._seen:
                continue
            text = record[side].strip()
            if self.objective == "mono-full":
                prompt, output = T.MONO_FULL_INPUT, text
            else:
                split = mono_half_split(text)
                if split is None:
                    self.stats.unusable["sentence too short to split (mono-half)"] += 1
                    continue
                prompt, output = T.MONO_HALF_INPUT.format(prefix=split[0]), split[1]
            tag = f"{lang.code}-{lang.code}"
            k = sum(1 for r in out if r["src_lang"] == lang.code)
            out.append({"id": f"{rid}:{self.objective}:{tag}:{k}", "objective": self.objective,
                        "src_lang": lang.code, "tgt_lang": lang.code, "input": prompt, "output": output,
                        "source_id": rid})
        if not out and all(get_language(record[f]).code in self._seen for f in ("src_lang", "tgt_lang")):
            self.stats.unusable["no side in a language unseen by BLOOM"] += 1
        return out


# ----------------------------------------------------------------------------------------- pure helpers
class Reservoir:
    """A bounded uniform sample per language of everything added so far (reservoir sampling, algorithm R):
    every item seen has the same chance to be kept, and no pool holds more than `size` items."""

    def __init__(self, size: int, rng: random.Random):
        self.size, self.rng = size, rng
        self.pools: dict[str, list] = {}
        self.seen: Counter = Counter()

    def pool(self, code: str) -> list:
        return self.pools.get(code, [])

    def add(self, code: str, item: Any) -> None:
        pool = self.pools.setdefault(code, [])
        self.seen[code] += 1
        if len(pool) < self.size:
            pool.append(item)
        else:
            j = self.rng.randrange(self.seen[code])
            if j < self.size:
                pool[j] = item


def draw_where(pool: list, accept: Callable[[Any], bool], rng: random.Random) -> Any:
    """A uniform draw from `pool` that `accept`s: a few random tries, then a scan from a random start (so a
    pool dominated by rejected items still yields the others); None if nothing in it is accepted."""
    if not pool:
        return None
    for _ in range(_RESERVOIR_TRIES):
        candidate = rng.choice(pool)
        if accept(candidate):
            return candidate
    start = rng.randrange(len(pool))
    for candidate in chain(pool[start:], pool[:start]):
        if accept(candidate):
            return candidate
    return None


def _overlap(a: list[int], b: list[int]) -> bool:
    """Whether the token spans [a0, a1) and [b0, b1) share a token."""
    return a[0] < b[1] and b[0] < a[1]


def mono_half_split(text: str) -> tuple[str, str] | None:
    """(prefix, rest) for mono-half: words split at floor(N/2); one-word text split by characters."""
    words = text.split()
    if len(words) >= 2:
        half = len(words) // 2
        return " ".join(words[:half]), " ".join(words[half:])
    if len(text) >= 2:
        half = len(text) // 2
        return text[:half], text[half:]
    return None


def token_offsets(text: str, tokens: list[str]) -> list[int] | None:
    """Start offset of each token in `text`, found left to right; None when a token is not there."""
    offsets, pos = [], 0
    for tok in tokens:
        i = text.find(tok, pos)
        if i < 0:
            return None
        offsets.append(i)
        pos = i + len(tok)
    return offsets


class SpanText:
    """The text of a token span as `ait align` writes pair strings: the sentence's own substring
    (original spacing) when the tokens are found in it in order, else the tokens joined by one space."""

    def __init__(self, text: str, tokens: list[str]):
        self.text, self.tokens = text, tokens
        self.offsets = token_offsets(text, tokens)

    def bounds(self, start: int, end: int) -> tuple[int, int] | None:
        if self.offsets is None:
            return None
        return self.offsets[start], self.offsets[end - 1] + len(self.tokens[end - 1])

    def __call__(self, start: int, end: int) -> str:
        bounds = self.bounds(start, end)
        return " ".join(self.tokens[start:end]) if bounds is None else self.text[bounds[0]:bounds[1]]

    def replace(self, start: int, end: int, new: str) -> str:
        """The sentence with tokens [start, end) replaced by `new`."""
        bounds = self.bounds(start, end)
        if bounds is None:
            return " ".join([*self.tokens[:start], new, *self.tokens[end:]])
        return self.text[:bounds[0]] + new + self.text[bounds[1]:]


def _occurrences(tokens: list[str], span: list[str]) -> list[int]:
    """Start positions of `span` in `tokens` (list.index keeps the scan in C)."""
    n, first, out, p = len(span), span[0], [], -1
    index = tokens.index
    while True:
        try:
            p = index(first, p + 1)
        except ValueError:
            return out
        if tokens[p:p + n] == span:
            out.append(p)


def spans_aligned(s_tokens: list[str], t_tokens: list[str], links: set[tuple[int, int]],
                  s_words: list[str], t_words: list[str]) -> bool:
    """Whether a link joins any occurrence of `s_words` in `s_tokens` to any of `t_words` in `t_tokens`."""
    s_occ, t_occ = _occurrences(s_tokens, s_words), _occurrences(t_tokens, t_words)
    ls, lt = len(s_words), len(t_words)
    for p in s_occ:
        for q in t_occ:
            for i in range(p, p + ls):
                for j in range(q, q + lt):
                    if (i, j) in links:
                        return True
    return False


class _SpanSampler:
    """Replacement spans for one side of a gold pair, drawn uniformly without replacement: every span as
    wide as the replaced one except itself, then the other gold spans of other widths. Drawn lazily by
    rejection (most sentences need one or two draws), never materialising the whole list."""

    def __init__(self, length: int, start: int, end: int, gold_spans: set[tuple[int, int]]):
        self.start, self.width = start, end - start
        self.n_same = length - self.width  # positions 0..length-width, minus the original
        self.others = sorted(g for g in gold_spans if g[1] - g[0] != self.width)
        self.total = self.n_same + len(self.others)
        self.tried: set[int] = set()

    def draw(self, rng: random.Random) -> tuple[int, int] | None:
        while len(self.tried) < self.total:
            k = rng.randrange(self.total)
            if k in self.tried:
                continue
            self.tried.add(k)
            if k < self.n_same:
                i = k if k < self.start else k + 1  # skip the replaced span itself
                return i, i + self.width
            return self.others[k - self.n_same]
        return None


class _AlignSentence:
    """One record in one direction, as align's False records need it (s_* on the instruction's source side)."""

    def __init__(self, record: Record, d: _Orientation, pairs: list[_Pair]):
        self.s_tokens, self.t_tokens = ((record["tgt_tokens"], record["src_tokens"]) if d.flip
                                        else (record["src_tokens"], record["tgt_tokens"]))
        self.links = {(j, i) if d.flip else (i, j) for i, j in record["links"]}
        self.pairs = pairs
        self.s_text, self.t_text = InstructionBuilder._sides(record, d)
        self.s_span_text, self.t_span_text = SpanText(self.s_text, self.s_tokens), SpanText(self.t_text, self.t_tokens)
        self.gold_texts = {(p.s_text, p.t_text) for p in pairs}
        self.gold_texts |= {(self.s_span_text(p.s_start, p.s_end), self.t_span_text(p.t_start, p.t_end)) for p in pairs}
        self.taken: set[tuple[str, str]] = set()  # the False assertions made for this sentence and direction

    def foreign_negative(self, pair: _Pair, side: int, pool: list, rng: random.Random) -> tuple[str, str] | None:
        """`pair` with side `side` (0: source) swapped for a word group of another sentence, drawn from
        `pool` ((text, tokens) items) under the rules of the sentence's own spans."""
        kept_text = self.t_span_text(pair.t_start, pair.t_end) if side == 0 else self.s_span_text(pair.s_start, pair.s_end)
        kept_words = (self.t_tokens[pair.t_start:pair.t_end] if side == 0
                      else self.s_tokens[pair.s_start:pair.s_end])
        replaced = pair.s_text if side == 0 else pair.t_text

        def texts(group: tuple[str, list[str]]) -> tuple[str, str]:
            return (group[0], kept_text) if side == 0 else (kept_text, group[0])

        def qualifies(group: tuple[str, list[str]]) -> bool:
            text, words = group
            if text == replaced or not words or all(map(is_punct, words)):
                return False
            if texts(group) in self.gold_texts or texts(group) in self.taken:
                return False
            s_words, t_words = (words, kept_words) if side == 0 else (kept_words, words)
            return not spans_aligned(self.s_tokens, self.t_tokens, self.links, s_words, t_words)

        group = draw_where(pool, qualifies, rng)
        if group is None:
            return None
        self.taken.add(texts(group))
        return texts(group)


def negative_spans(s_tokens: list[str], t_tokens: list[str], links: set[tuple[int, int]], pair: _Pair,
                   all_pairs: list[_Pair], gold_texts: set[tuple[str, str]], n: int,
                   rng: random.Random, taken: set[tuple[str, str]] | None = None,
                   s_span_text: Callable[[int, int], str] | None = None,
                   t_span_text: Callable[[int, int], str] | None = None) -> list[tuple[str, str]]:
    """Up to `n` (src span text, tgt span text) made from `pair` by swapping one side (chosen uniformly)
    for a span that is not aligned to the other side (see the module docstring). Texts in `taken` (the
    negatives already made for this sentence) are not repeated; new ones are added to it."""
    if n <= 0:
        return []
    samplers: dict[int, _SpanSampler] = {}
    made: list[tuple[str, str]] = []
    taken = set() if taken is None else taken
    s_span_text = s_span_text or (lambda a, b: " ".join(s_tokens[a:b]))
    t_span_text = t_span_text or (lambda a, b: " ".join(t_tokens[a:b]))

    def next_valid(side: int) -> tuple[str, str] | None:
        sampler = samplers.get(side)
        if sampler is None:
            if side == 0:
                sampler = _SpanSampler(len(s_tokens), pair.s_start, pair.s_end,
                                       {(p.s_start, p.s_end) for p in all_pairs})
            else:
                sampler = _SpanSampler(len(t_tokens), pair.t_start, pair.t_end,
                                       {(p.t_start, p.t_end) for p in all_pairs})
            samplers[side] = sampler
        while True:
            span = sampler.draw(rng)
            if span is None:
                return None
            start, end = span
            if side == 0:
                s_range, t_range = (start, end), (pair.t_start, pair.t_end)
            else:
                s_range, t_range = (pair.s_start, pair.s_end), (start, end)
            s_words, t_words = s_tokens[s_range[0]:s_range[1]], t_tokens[t_range[0]:t_range[1]]
            if all(map(is_punct, s_words if side == 0 else t_words)):
                continue  # a punctuation-only span makes a trivial negative (ait align drops such pairs)
            texts = (s_span_text(*s_range), t_span_text(*t_range))
            if texts in gold_texts or texts in taken or texts == (pair.s_text, pair.t_text):
                continue
            if spans_aligned(s_tokens, t_tokens, links, s_words, t_words):
                continue
            return texts

    for _ in range(n):
        side = rng.randrange(2)
        found = next_valid(side) or next_valid(1 - side)
        if found is None:
            break
        made.append(found)
        taken.add(found)
    return made


def build_instructions(records: Iterable[Record], options: BuildOptions | str, *, stats: BuildStats | None = None,
                       **fields) -> Iterator[Record]:
    """Instruction records for each record of `records` (streamed, in input order); `options` is a
    `BuildOptions` or an objective name with BuildOptions fields as keywords
    (`build_instructions(recs, "align", negatives=0.5)`).

    `records` must already be valid for `INPUT_KIND[objective]` (io.read_records checks that); pass a
    `BuildStats` to learn what was skipped and why."""
    builder = InstructionBuilder(options, stats=stats, **fields)
    # chain/map keep the per-record loop in C: this is the mt hot path.
    return chain.from_iterable(map(builder, records))
