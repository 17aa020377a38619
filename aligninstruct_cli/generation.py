"""Batched translation with a causal LM (plus an optional LoRA adapter): prompts, batching, pivoting.

How a record becomes a hypothesis:
1. The prompt is an inference template (`prompt`: the MTInstruct input by default, PROMPT-1..5 of the
   paper, or a custom template) filled with English language names and the source sentence. Training
   examples are `input + " " + output + EOS` (templates.py), so the prompt is the input alone.
2. Prompts are tokenized, sorted by length inside a chunk of records and generated in batches with LEFT
   padding (the generated tokens of every row then start at the same column); outputs go back to
   the input order before they are yielded.
3. The new tokens are decoded without special tokens; leading whitespace (the output separator) is
   dropped and the text is cut at the first newline after it (`clean_hypothesis`). Generation of a row
   stops at EOS or at that newline (greedy search only; beam search stops at EOS or
   `max_new_tokens`), so the cut never depends on the batch a sentence landed in.

Greedy search is the default (ait's choice: the paper does not state its decoding). Memory is bounded by one
chunk of records.

Options: `TranslateOptions` = `ModelOptions` (loaded by `models.load_model`) + `DecodingOptions` (what
`Translator` needs) + `io.ReadOptions`; each default is defined there once.
"""

from __future__ import annotations

import string
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence

from aligninstruct_cli import console
from aligninstruct_cli.instructions.templates import PROMPT_PLACEHOLDERS, PROMPTS
from aligninstruct_cli.io import FORMATS, INPUT_PANEL, ReadOptions, known_language
from aligninstruct_cli.languages import get_language
from aligninstruct_cli.models import MODEL_PANEL, LoadedModel, ModelOptions
from aligninstruct_cli.options import OptionError, check_options, option, option_ref

CUSTOM_PROMPT_NAME = "custom"


# ---------------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class Prompt:
    name: str  # "default", "1".."5" or "custom"
    template: str

    def render(self, src_lang: str, tgt_lang: str, src: str) -> str:
        return self.template.format(src_name=get_language(src_lang).name,
                                    tgt_name=get_language(tgt_lang).name, src=src)


def resolve_prompt(spec: str) -> Prompt:
    """`default`, `1`..`5` (the paper's Table 8) or a custom template using {src_name} {tgt_name} {src}.

    In a custom template the two characters `\\n` stand for a newline (shells make typing one awkward)
    and `{{`/`}}` are literal braces."""
    if spec in PROMPTS:
        return Prompt(spec, PROMPTS[spec])
    template = spec.replace("\\n", "\n")
    try:
        placeholders = [p for _, p, _, _ in string.Formatter().parse(template) if p is not None]
    except ValueError as exc:
        raise OptionError(f"{option_ref('prompt')}: malformed template ({exc})",
                          hint="write literal braces as {{ and }}") from None
    unknown = sorted({p for p in placeholders if p not in PROMPT_PLACEHOLDERS})
    if unknown:
        raise OptionError(f"{option_ref('prompt')}: unknown placeholder(s) {', '.join('{' + p + '}' for p in unknown)}",
                          hint=f"use {', '.join('{' + p + '}' for p in PROMPT_PLACEHOLDERS)}, or one of "
                               f"{', '.join(PROMPTS)}")
    if "src" not in placeholders:
        raise OptionError(f"{option_ref('prompt')} {spec!r} is neither a prompt name ({', '.join(PROMPTS)}) nor a "
                          "template with {src}")
    return Prompt(CUSTOM_PROMPT_NAME, template)


def clean_hypothesis(text: str) -> str:
    """The translation inside generated text: leading whitespace dropped, cut at the first newline."""
    return text.lstrip().split("\n", 1)[0].rstrip()


def _prompt_option(spec: str) -> str:
    resolve_prompt(spec)  # checked now, resolved where it is used
    return spec


# ---------------------------------------------------------------------------------------------- options
@dataclass(kw_only=True)
class DecodingOptions:
    """How `Translator` generates."""

    prompt: str = option("default", parse=_prompt_option,
                         help="default (the MTInstruct input), 1..5 (the paper's PROMPT-1..5) or a custom template "
                              "with {src_name} {tgt_name} {src} (\\n means a newline).", details="See *Prompts*.")
    num_beams: int = option(1, min=1, help="Beam size; 1 = greedy search (ait's default: the paper does not state "
                            "its decoding).")
    max_new_tokens: int = option(384, min=1, help="Most tokens generated per sentence (ait's default: the paper states "
                                 "no decoding limit; 384 is its maximum training output length, App. B).")
    batch_size: int = option(16, min=1, help="Sentences per generate call (ait's choice); halved automatically on "
                             "CUDA out-of-memory.")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(kw_only=True)
class TranslateOptions(ReadOptions, ModelOptions, DecodingOptions):
    """The options of `ait translate` (the model's are `ModelOptions`', the decoding's `DecodingOptions`', the
    input's `ReadOptions`')."""

    input_format: Literal[FORMATS] = option(  # type: ignore[valid-type]
        "auto", panel=INPUT_PANEL,
        help="Input format; text: one source sentence a line (needs --src-lang/--tgt-lang); auto: text for "
             "*.txt, else by file name or the first line.", details="Formats: [formats.md](formats.md).")
    merge: bool = option(False, panel=MODEL_PANEL, help="Merge the adapter into the base weights before generating "
                         "(needs --adapter; faster generation, same output up to rounding).")
    pivot: Optional[str] = option(None, parse=known_language,
                                  help="Pivot language (e.g. en): translate src→pivot→tgt when neither side is the "
                                       "pivot; the record keeps the pivot text in pivot_hyp.", details="See *Pivot*.")

    def __post_init__(self) -> None:
        check_options(self)
        if self.merge and not self.adapter:
            raise OptionError(f"{option_ref('merge')} needs {option_ref('adapter')}")


# ---------------------------------------------------------------------------------------------- generation
@dataclass
class GenerationStats:
    sentences: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    oom_halvings: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class _StopAtNewline:
    """Per-row stopping criterion: a row is done once its generated text holds a newline after some
    non-whitespace text (exactly where `clean_hypothesis` cuts). Only rows whose newest token contains a
    newline are decoded, so the check costs almost nothing."""

    def __init__(self, tokenizer, newline_ids, prompt_len: int):
        self.tokenizer = tokenizer
        self.newline_ids = newline_ids  # tensor of token ids whose text contains "\n"
        self.prompt_len = prompt_len
        self.done = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        candidates = torch.isin(input_ids[:, -1], self.newline_ids) & ~self.done
        for row in candidates.nonzero().flatten().tolist():
            text = self.tokenizer.decode(input_ids[row, self.prompt_len:], skip_special_tokens=True)
            if "\n" in text.lstrip():
                self.done[row] = True
        return self.done.clone()


def _oom_error_types() -> tuple[type, ...]:
    import torch

    types = [t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
             if t is not None]
    return tuple(dict.fromkeys(types))


class Translator:
    """Generates for lists of prompts in length-sorted, left-padded batches; see the module docstring."""

    def __init__(self, loaded: LoadedModel, options: DecodingOptions | None = None, *,
                 on_batch: Callable[[int, int], None] | None = None, **fields: Any):
        """`options` (a `TranslateOptions` will do) with `fields` replaced, e.g. `Translator(loaded,
        batch_size=8)`; the dataclass checks them."""
        options = options or DecodingOptions()
        self.options = replace(options, **fields) if fields else options
        self.loaded = loaded
        self.prompt = resolve_prompt(self.options.prompt)
        self.batch_size = self.options.batch_size  # lowered for the rest of the run on CUDA out-of-memory
        self.on_batch = on_batch
        self.stats = GenerationStats()
        self._newline_ids = None

    # -- low level: prompts -> texts
    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Cleaned hypotheses for `prompts`, in the same order."""
        tok = self.loaded.tokenizer
        ids = tok(list(prompts), add_special_tokens=True)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))  # longest first: OOM shows early
        out: list[str | None] = [None] * len(ids)
        start = 0
        while start < len(order):
            batch = order[start:start + self.batch_size]
            texts = self._generate_with_backoff([ids[i] for i in batch])
            for i, text in zip(batch, texts):
                out[i] = text
            start += len(batch)
        return out  # type: ignore[return-value]

    def _generate_with_backoff(self, batch_ids: list[list[int]]) -> list[str]:
        if len(batch_ids) > self.batch_size:  # an out-of-memory error lowered the batch size meanwhile
            texts: list[str] = []
            k = 0
            while k < len(batch_ids):
                piece = batch_ids[k:k + self.batch_size]
                texts += self._generate_with_backoff(piece)
                k += len(piece)
            return texts
        try:
            return self._generate_batch(batch_ids)
        except _oom_error_types():
            import torch

            if len(batch_ids) == 1:
                raise OptionError(f"CUDA out of memory on a single sentence: lower {option_ref('max_new_tokens')} or "
                                  f"{option_ref('num_beams')}, or use {option_ref('precision')} bf16") from None
            torch.cuda.empty_cache()
            self.batch_size = max(1, len(batch_ids) // 2)
            self.stats.oom_halvings += 1
            console.warn(f"CUDA out of memory at batch size {len(batch_ids)}; continuing with {self.batch_size}")
        return self._generate_with_backoff(batch_ids)

    def _newline_token_ids(self):
        import torch

        if self._newline_ids is None:
            tok = self.loaded.tokenizer
            pieces = tok.batch_decode([[i] for i in range(len(tok))])
            ids = [i for i, piece in enumerate(pieces) if "\n" in piece]
            self._newline_ids = torch.tensor(ids, dtype=torch.long, device=self.loaded.device)
        return self._newline_ids

    def _generate_batch(self, batch_ids: list[list[int]]) -> list[str]:
        import torch
        from transformers import StoppingCriteriaList

        tok, model = self.loaded.tokenizer, self.loaded.model
        pad = tok.pad_token_id
        width = max(len(x) for x in batch_ids)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch_ids], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch_ids], dtype=torch.long)
        kwargs: dict[str, Any] = dict(max_new_tokens=self.options.max_new_tokens, num_beams=self.options.num_beams,
                                      do_sample=False, pad_token_id=pad, num_return_sequences=1)
        eos = tok.eos_token_id
        if eos is not None:
            kwargs["eos_token_id"] = eos
        if self.options.num_beams == 1:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopAtNewline(tok, self._newline_token_ids(), width)])
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(input_ids=input_ids.to(self.loaded.device),
                                    attention_mask=mask.to(self.loaded.device), **kwargs)
        new = output[:, width:].tolist()
        self.stats.seconds += time.perf_counter() - started
        n_tokens = sum(_count_generated(row, eos, pad) for row in new)
        self.stats.sentences += len(batch_ids)
        self.stats.new_tokens += n_tokens
        self.stats.batch_sizes.append(len(batch_ids))
        if self.on_batch:
            self.on_batch(len(batch_ids), n_tokens)
        return [clean_hypothesis(tok.decode(row, skip_special_tokens=True)) for row in new]

    # -- records
    def translate(self, records: Iterable[dict], *, pivot: str | None = None,
                  chunk_size: int | None = None) -> Iterator[dict]:
        """Each record with `hyp`, `prompt_name`, `model` and `adapter` added, in input order.

        With `pivot` (e.g. "en"), a record whose source and target both differ from the pivot language is
        translated src→pivot→tgt; it also gets `pivot_lang` and `pivot_hyp` (the first leg's output)."""
        for chunk in self.translate_chunks(records, pivot=pivot, chunk_size=chunk_size):
            yield from chunk

    def translate_chunks(self, records: Iterable[dict], *, pivot: str | None = None,
                         chunk_size: int | None = None) -> Iterator[list[dict]]:
        """`translate`, one list per chunk of input records (the unit of length sorting and of memory)."""
        pivot_code = get_language(pivot).code if pivot else None
        chunk_size = chunk_size or max(self.batch_size * 16, 256)
        chunk: list[dict] = []
        for rec in records:
            chunk.append(rec)
            if len(chunk) >= chunk_size:
                yield self._translate_chunk(chunk, pivot_code)
                chunk = []
        if chunk:
            yield self._translate_chunk(chunk, pivot_code)

    def _translate_chunk(self, chunk: list[dict], pivot: str | None) -> list[dict]:
        codes = [(get_language(r["src_lang"]).code, get_language(r["tgt_lang"]).code) for r in chunk]
        pivoted = [pivot is not None and pivot not in pair for pair in codes]
        first_leg = self.generate([self.prompt.render(r["src_lang"], pivot, r["src"])
                                   for r, p in zip(chunk, pivoted) if p]) if any(pivoted) else []
        legs = iter(first_leg)
        sources = [(pivot, next(legs)) if p else (r["src_lang"], r["src"]) for r, p in zip(chunk, pivoted)]
        hyps = self.generate([self.prompt.render(lang, r["tgt_lang"], text)
                              for r, (lang, text) in zip(chunk, sources)])
        out = []
        for rec, hyp, p, (_, pivot_text) in zip(chunk, hyps, pivoted, sources):
            rec = dict(rec)
            if p:
                rec["pivot_lang"] = pivot
                rec["pivot_hyp"] = pivot_text
            rec.update(hyp=hyp, prompt_name=self.prompt.name, model=self.loaded.model_id,
                       adapter=self.loaded.adapter)
            out.append(rec)
        return out


def _count_generated(row: list[int], eos: int | None, pad: int | None) -> int:
    """New tokens a row really generated: up to and including EOS, not counting the padding after it."""
    n = 0
    for token in row:
        if token == eos:
            return n + 1
        if token == pad:
            return n
        n += 1
    return n
