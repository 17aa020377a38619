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
from aligninstruct_cli.models import (MODEL_PANEL, LoadedModel, ModelOptions, base_model_of, chat_prompt,
                                      check_chat_template, oom_error_types)
from aligninstruct_cli.options import OptionError, check_options, option, option_ref

CUSTOM_PROMPT_NAME = "custom"
CACHES = ("auto", "static", "dynamic")
STATIC_WIDTH_STEP = 32  # static cache: prompt widths rounded up to this (each new cache size compiles again)


# ---------------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class Prompt:
    name: str  # "default", "1".."5" or "custom"
    template: str
    chat_tokenizer: Any = None  # set: the filled template becomes a user turn of this tokenizer's chat template

    def render(self, src_lang: str, tgt_lang: str, src: str) -> str:
        text = self.template.format(src_name=get_language(src_lang).name,
                                    tgt_name=get_language(tgt_lang).name, src=src)
        if self.chat_tokenizer is not None:
            return chat_prompt(self.chat_tokenizer, text)  # as training renders its inputs (training/examples.py)
        return text

    def with_chat_template(self, tokenizer, model: str) -> "Prompt":
        """This prompt wrapped in `tokenizer`'s chat template (`chat_template` option)."""
        check_chat_template(tokenizer, model)
        return replace(self, chat_tokenizer=tokenizer)


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
                                 "no decoding limit; 384 is its maximum output length, App. B, read as each side's: "
                                 "under ait train's default --length-budget together, input + output share it).")
    max_input_tokens: int = option(
        1024, min=1, help="Longest prompt in tokens (template and source); a longer one is an error naming its "
        "record, and a source over 64 characters a token is refused when read (FILE:LINE; --on-error skip skips it).",
        details="ait's guard (the paper's inputs are at most 256 tokens, App. B): it keeps one huge line from "
                "exhausting memory before generation starts.")
    batch_size: int = option(16, min=1, help="Sentences per generate call (ait's choice); halved automatically on "
                             "CUDA out-of-memory.")
    chat_template: bool = option(False, help="Wrap each prompt in the tokenizer's chat template (a user turn), for "
                                 "chat-tuned models and adapters trained with `ait train --chat-template`.")
    cache: Literal[CACHES] = option(  # type: ignore[valid-type]
        "auto", help="KV cache: static (fixed-size: ait's greedy decoding loop, each step one CUDA graph on a GPU), "
        "dynamic (plain generate), or auto: static on a GPU for greedy search where the model supports it.",
        details="Static keeps each batch full (the last one padded with copies) and rounds prompt widths up to "
                f"{STATIC_WIDTH_STEP} tokens, so few shapes are captured; the output is the same tokens as plain "
                "generate on the same batches. On a CPU `--cache static` runs the same loop without graphs. Beam "
                "search and models without a static cache take dynamic, with a note. See *Speed*.")

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
    merge: bool = option(True, panel=MODEL_PANEL, negatable=True,
                         help="Merge the adapter into the base weights before generating (faster; the same output "
                              "up to bf16 rounding); --no-merge keeps the LoRA layers separate.")
    num_gpus: int = option(1, min=1, panel=MODEL_PANEL,
                           help="Processes translating at once, one per GPU (cuda:0..N-1), each holding the model; "
                                "the output file is the same as with one. Without a GPU: N CPU processes.",
                           details="Each process takes whole chunks of records (the unit of length sorting), so "
                                   "the batches, and the output, do not depend on N.")
    pivot: Optional[str] = option(None, parse=known_language,
                                  help="Pivot language (e.g. en): translate src→pivot→tgt when neither side is the "
                                       "pivot; the record keeps the pivot text in pivot_hyp.", details="See *Pivot*.")

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def merges(self) -> bool:
        """Whether the adapter is merged: `merge` means nothing without one."""
        return self.merge and bool(self.adapter)


# ---------------------------------------------------------------------------------------------- generation
@dataclass
class GenerationStats:
    sentences: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    oom_halvings: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    at_limit: int = 0  # sentences that ran to max_new_tokens (the health checks' "stopped at max_new_tokens")


class _StopAtNewline:
    """Per-row stopping criterion: a row is done once its generated text holds a newline after some
    non-whitespace text (exactly where `clean_hypothesis` cuts). Only rows whose newest token contains a
    newline are decoded, so the check costs almost nothing."""

    def __init__(self, tokenizer, newline_ids, prompt_len: int, real_rows: int | None = None):
        self.tokenizer = tokenizer
        self.newline_ids = newline_ids  # tensor of token ids whose text contains "\n"
        self.prompt_len = prompt_len
        self.real_rows = real_rows  # rows after it only fill a static batch: done from the start
        self.done = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch  # lazy: torch

        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if self.real_rows is not None:
                self.done[self.real_rows:] = True
        candidates = torch.isin(input_ids[:, -1], self.newline_ids) & ~self.done
        for row in candidates.nonzero().flatten().tolist():
            if stops_at_newline(self.tokenizer, input_ids[row, self.prompt_len:]):
                self.done[row] = True
        return self.done.clone()


def stops_at_newline(tokenizer, new_ids) -> bool:
    """The stop rule on a row's generated ids: a newline after some non-whitespace text (where
    `clean_hypothesis` cuts); `_StopAtNewline` and ait's decoding loop both ask it."""
    return "\n" in tokenizer.decode(new_ids, skip_special_tokens=True).lstrip()


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
        if self.options.chat_template:
            self.prompt = self.prompt.with_chat_template(loaded.tokenizer, loaded.model_id)
        self.batch_size = self.options.batch_size  # lowered for the rest of the run on CUDA out-of-memory
        self.on_batch = on_batch
        self.stats = GenerationStats()
        self._newline_ids = None
        self.static_cache = self._resolve_cache()
        self.fixed_shapes = self.static_cache  # full batches, rounded widths (a benchmark sets it to compare)
        # static cache: ait's decoding loop (decoding.py), unless the model's generation config changes the
        # logits (then `generate` with a static cache); a benchmark sets it False to time generate's static path
        self.own_loop = self.static_cache and self._own_loop_applies()
        self.compile_config = None  # transformers' CompileConfig for generate's static path; None: its default
        self._decoder = None

    def _resolve_cache(self) -> bool:
        """Whether batches use a static KV cache (see `DecodingOptions.cache`); a one-line note where auto or
        static has to fall back to the dynamic cache on a GPU."""
        setting = self.options.cache
        if setting == "dynamic":
            return False
        on_gpu = getattr(self.loaded.device, "type", "cpu") == "cuda"
        if setting == "auto" and not on_gpu:
            return False  # nothing compiles the decoding step on a CPU: the static cache only adds work there
        reason = None
        if self.options.num_beams > 1:
            reason = "beam search"
        elif not supports_static_cache(self.loaded.model):
            reason = f"{type(base_model_of(self.loaded.model)).__name__} has no static cache in this transformers"
        if reason:
            console.info(f"generation: dynamic KV cache ({reason}); the static-cache fast path is for greedy search")
            return False
        return True

    def _own_loop_applies(self) -> bool:
        from aligninstruct_cli.decoding import unsupported_generation_settings  # lazy: start-up (~1.4 ms)

        settings = unsupported_generation_settings(base_model_of(self.loaded.model))
        if settings:
            console.info(f"generation: transformers' generate with a static cache (the model's generation config "
                         f"sets {', '.join(settings)}, which ait's decoding loop does not apply)")
        return not settings

    def decoder(self):
        """ait's greedy decoding loop for this model (built on first use): CUDA graphs and a look at the tokens
        every CHECK_EVERY steps on a GPU, plain steps looked at one by one on a CPU."""
        if self._decoder is None:
            from aligninstruct_cli.decoding import CHECK_EVERY, GreedyDecoder  # lazy: start-up (~1.4 ms)

            tok = self.loaded.tokenizer
            on_gpu = getattr(self.loaded.device, "type", "cpu") == "cuda"
            self._decoder = GreedyDecoder(
                self.loaded.model, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                newline_ids=self._newline_token_ids(), is_stop=lambda ids: stops_at_newline(tok, ids),
                device=self.loaded.device, graphs=on_gpu, check_every=CHECK_EVERY if on_gpu else 1,
                note=console.info)
        return self._decoder

    # -- low level: prompts -> texts
    def generate(self, prompts: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
        """Cleaned hypotheses for `prompts`, in the same order."""
        tok = self.loaded.tokenizer
        return [clean_hypothesis(tok.decode(row, skip_special_tokens=True))
                for row in self.generate_token_ids(prompts, names)]

    def generate_token_ids(self, prompts: Sequence[str], names: Sequence[str] | None = None) -> list[list[int]]:
        """The new token ids of each prompt (up to EOS or the stop, padding after it), in the same order.
        `names` (e.g. record ids) name a prompt longer than `max_input_tokens` in the error."""
        tok = self.loaded.tokenizer
        ids = tok(list(prompts), add_special_tokens=True)["input_ids"]
        limit = self.options.max_input_tokens
        for i, row in enumerate(ids):
            if len(row) > limit:
                which = f"record {names[i]!r}" if names else f"prompt {i + 1}"
                raise OptionError(f"{which}: its prompt has {len(row)} tokens, more than "
                                  f"{option_ref('max_input_tokens')} {limit}",
                                  hint="shorten the source, or raise the limit")
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))  # longest first: OOM shows early
        out: list[list[int] | None] = [None] * len(ids)
        start = 0
        while start < len(order):
            batch = order[start:start + self.batch_size]
            rows = self._generate_with_backoff([ids[i] for i in batch])
            for i, row in zip(batch, rows):
                out[i] = row
            start += len(batch)
        return out  # type: ignore[return-value]

    def _generate_with_backoff(self, batch_ids: list[list[int]]) -> list[list[int]]:
        if len(batch_ids) > self.batch_size:  # an out-of-memory error lowered the batch size meanwhile
            rows: list[list[int]] = []
            k = 0
            while k < len(batch_ids):
                piece = batch_ids[k:k + self.batch_size]
                rows += self._generate_with_backoff(piece)
                k += len(piece)
            return rows
        try:
            return self.generate_ids(batch_ids)
        except oom_error_types():
            import torch  # lazy: torch

            if len(batch_ids) == 1:
                raise OptionError(f"CUDA out of memory on a single sentence: lower {option_ref('max_new_tokens')} or "
                                  f"{option_ref('num_beams')}, or use {option_ref('precision')} bf16") from None
            if self._decoder is not None:
                self._decoder.release()  # its caches and graphs were sized for the larger batch
            torch.cuda.empty_cache()
            self.batch_size = max(1, len(batch_ids) // 2)
            self.stats.oom_halvings += 1
            console.warn(f"CUDA out of memory at batch size {len(batch_ids)}; continuing with {self.batch_size}")
        return self._generate_with_backoff(batch_ids)

    def _newline_token_ids(self):
        import torch  # lazy: torch

        if self._newline_ids is None:
            tok = self.loaded.tokenizer
            pieces = tok.batch_decode([[i] for i in range(len(tok))])
            ids = [i for i, piece in enumerate(pieces) if "\n" in piece]
            self._newline_ids = torch.tensor(ids, dtype=torch.long, device=self.loaded.device)
        return self._newline_ids

    def generate_ids(self, batch_ids: list[list[int]]) -> list[list[int]]:
        """One batch: the new token ids of each row (up to EOS or the stop, padding after it)."""
        import torch  # lazy: torch

        tok = self.loaded.tokenizer
        pad = tok.pad_token_id
        rows = list(batch_ids)
        width = max(len(x) for x in rows)
        if self.fixed_shapes:
            # Fixed shapes, so the compiled decoding step is reused: a full batch (copies of the last row fill
            # it, stopped from the start) and a prompt width rounded up (left padding changes nothing: BLOOM's
            # ALiBi counts positions from the first real token, the others take position ids from the mask).
            rows += [rows[-1]] * (self.batch_size - len(rows))
            width = -(-width // STATIC_WIDTH_STEP) * STATIC_WIDTH_STEP
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in rows], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in rows], dtype=torch.long)
        eos = tok.eos_token_id
        started = time.perf_counter()
        if self.own_loop:
            new = self.decoder().decode(input_ids, mask, self.options.max_new_tokens, real_rows=len(batch_ids))
        else:
            new = self._generate(input_ids, mask, real_rows=len(batch_ids))
        self.stats.seconds += time.perf_counter() - started
        counts = [_count_generated(row, eos, pad) for row in new]
        n_tokens = sum(counts)
        self.stats.at_limit += sum(n >= self.options.max_new_tokens for n in counts)
        self.stats.sentences += len(batch_ids)
        self.stats.new_tokens += n_tokens
        self.stats.batch_sizes.append(len(batch_ids))
        if self.on_batch:
            self.on_batch(len(batch_ids), n_tokens)
        return new

    def _generate(self, input_ids, mask, *, real_rows: int) -> list[list[int]]:
        """transformers' `generate` on one left-padded batch (beam search, the dynamic cache, or a static cache
        whose model sets generation settings ait's loop does not apply): the new tokens of the first
        `real_rows` rows."""
        import torch  # lazy: torch
        from transformers import StoppingCriteriaList  # lazy: transformers

        tok = self.loaded.tokenizer
        width = input_ids.shape[1]
        kwargs: dict[str, Any] = dict(max_new_tokens=self.options.max_new_tokens, num_beams=self.options.num_beams,
                                      do_sample=False, pad_token_id=tok.pad_token_id, num_return_sequences=1)
        if self.static_cache:
            kwargs["cache_implementation"] = "static"
            if self.compile_config is not None:
                kwargs["compile_config"] = self.compile_config
        if tok.eos_token_id is not None:
            kwargs["eos_token_id"] = tok.eos_token_id
        if self.options.num_beams == 1:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopAtNewline(tok, self._newline_token_ids(), width, real_rows=real_rows)])
        with torch.inference_mode():
            output = self.loaded.model.generate(input_ids=input_ids.to(self.loaded.device),
                                                attention_mask=mask.to(self.loaded.device), **kwargs)
        return output[:real_rows, width:].tolist()

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
        for chunk in chunked(records, chunk_size or default_chunk_size(self.options.batch_size)):
            yield self.translate_chunk(chunk, pivot_code)

    def translate_chunk(self, chunk: list[dict], pivot: str | None) -> list[dict]:
        """One chunk's records translated (`pivot`: a language code or None)."""
        codes = [(get_language(r["src_lang"]).code, get_language(r["tgt_lang"]).code) for r in chunk]
        pivoted = [pivot is not None and pivot not in pair for pair in codes]
        first = [r for r, p in zip(chunk, pivoted) if p]
        first_leg = self.generate([self.prompt.render(r["src_lang"], pivot, r["src"]) for r in first],
                                  [r.get("id") for r in first]) if first else []
        legs = iter(first_leg)
        sources = [(pivot, next(legs)) if p else (r["src_lang"], r["src"]) for r, p in zip(chunk, pivoted)]
        hyps = self.generate([self.prompt.render(lang, r["tgt_lang"], text) for r, (lang, text) in zip(chunk, sources)],
                             [r.get("id") for r in chunk])
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


def default_chunk_size(batch_size: int) -> int:
    """Records per chunk: the unit of length sorting (so the batches, and with them the output, depend on it
    alone), of memory, and of the work one process of `--num-gpus` takes at a time."""
    return max(batch_size * 16, 256)


def chunked(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def supports_static_cache(model) -> bool:
    """Whether transformers can generate with a static (compilable) KV cache for this model class:
    `_can_compile_fullgraph` in transformers 4.5x and 5.x, `_supports_static_cache` before."""
    base = base_model_of(model)
    return bool(getattr(base, "_can_compile_fullgraph", False) or getattr(base, "_supports_static_cache", False))


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
