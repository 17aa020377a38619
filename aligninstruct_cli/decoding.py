"""ait's own greedy decoding loop: a static KV cache, one prefill, then one forward + argmax + stop update per
step, with finished rows frozen; on CUDA the step is captured in one CUDA graph per (batch, width) bucket and
the host looks at the tokens every `check_every` steps instead of after each one.

It produces the tokens HF `generate(do_sample=False)` produces for the same left-padded batch with ait's stop
rule (`generation._StopAtNewline` + EOS): the same inputs reach the model at every step (the 2D mask over the
whole cache, as transformers' BLOOM gets it, position ids from the mask, the cache positions), a finished
row emits the pad token, and generation ends when every row has finished or `max_new_tokens` is reached.
Rows are independent in the model, so a row may run a few steps past its stop while the host is not looking:
those tokens are replaced by padding before anyone sees them.

The stop rule in two parts, so that it can live in a CUDA graph and still be the exact text rule:
- EOS is checked on the device at every step (a frozen row then feeds and emits the pad token);
- "a newline after some non-whitespace text" is decided on the host when it looks (every `check_every`
  steps): only rows whose new tokens contain a newline-bearing token are decoded, exactly as
  `_StopAtNewline` decodes them, and such a row is cut at the first step where the rule holds.

Why not `generate(cache_implementation="static")`: at the 7b1 shape its per-step Python and the device sync it
makes every step cost more than the compiled step itself (benchmarks/README.md).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, Callable, Sequence

from aligninstruct_cli.models import base_model_of

# generation-config settings that make `generate` change the logits before the argmax (or stop otherwise);
# a model whose config sets one of them generates with `generate` (see `unsupported_generation_settings`)
_NEUTRAL_SETTINGS: dict[str, Any] = {
    "repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,), "suppress_tokens": (None,), "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,), "forced_eos_token_id": (None,), "min_length": (None, 0),
    "min_new_tokens": (None, 0), "sequence_bias": (None,), "exponential_decay_length_penalty": (None,),
    "stop_strings": (None,), "max_time": (None,),
}
MAX_BUCKETS = 4  # (batch, width) buckets whose cache and graph are kept (a 7b1 bucket at batch 32 is ~2 GB)
CHECK_EVERY = 8  # steps between the host's looks at the tokens on a GPU (each look is one device sync)


def unsupported_generation_settings(model) -> list[str]:
    """The model's generation-config settings that ait's loop does not apply (it is argmax + the stop rule):
    such a model keeps `generate`. Sampling settings do not count: ait always decodes with do_sample=False."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return []
    return [name for name, neutral in _NEUTRAL_SETTINGS.items() if getattr(config, name, None) not in neutral]


def _forward_parameters(model) -> set[str]:
    """The keyword arguments the transformers model's forward names (under a PEFT wrapper: its base model's,
    which the wrapper passes them on to)."""
    return set(inspect.signature(base_model_of(model).forward).parameters)


class _Bucket:
    """The static cache, the step's input/output buffers and (on CUDA) the captured step for one (batch, width)."""

    def __init__(self, model, batch: int, width: int, max_new_tokens: int, device):
        import torch  # lazy: torch
        from transformers import StaticCache  # lazy: transformers

        self.batch, self.width, self.max_new_tokens = batch, width, max_new_tokens
        length = width + max_new_tokens
        # transformers 4.57 and 5.x: StaticCache(config=, max_cache_len=) allocates on the first update (prefill)
        self.cache = StaticCache(config=model.config, max_cache_len=length)
        long = dict(dtype=torch.long, device=device)
        self.mask = torch.zeros(batch, length, **long)  # 2D mask over the whole cache (BLOOM's alibi needs it 2D)
        self.next_input = torch.zeros(batch, 1, **long)
        self.position_ids = torch.zeros(batch, 1, **long)
        self.cache_position = torch.zeros(1, **long)  # the column the next input is written to
        self.step = torch.zeros(1, **long)  # the column of `tokens` the next step writes
        self.tokens = torch.zeros(batch, max_new_tokens, **long)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.graph = None  # torch.cuda.CUDAGraph once captured
        self.used = False  # the cache holds a previous batch's keys (reset before the next prefill)


class GreedyDecoder:
    """Greedy decoding of left-padded batches with ait's stop rule; one per `Translator`.

    `graphs`: capture the step in a CUDA graph (CUDA only; a failed capture falls back to running the same
    step uncaptured, with a note). `check_every`: steps between the host's looks at the tokens (the stop of
    the whole batch and the newline rule); 1 on a CPU, where looking costs nothing."""

    def __init__(self, model, *, pad_token_id: int, eos_token_id: int | None, newline_ids,
                 is_stop: Callable[[Sequence[int]], bool], device, graphs: bool = False, check_every: int = 1,
                 note: Callable[[str], None] | None = None):
        self.model = model
        self.pad = pad_token_id
        self.eos = eos_token_id
        self.device = device
        self.graphs = graphs and getattr(device, "type", "cpu") == "cuda"
        self.check_every = max(1, check_every)
        self.is_stop = is_stop  # the exact text rule on a row's generated ids (`_StopAtNewline`'s)
        self.newline_ids = frozenset(newline_ids.tolist())  # token ids that hold a newline, on the host: `_look`
        parameters = _forward_parameters(model)
        self.takes_position_ids = "position_ids" in parameters  # as generate: only where forward names them
        self.takes_cache_position = "cache_position" in parameters  # transformers 4.x; 5.x caches count themselves
        self.takes_logits_to_keep = "logits_to_keep" in parameters
        self.note = note
        self.buckets: OrderedDict[tuple[int, int, int], _Bucket] = OrderedDict()
        self.captured = 0  # graphs captured so far (the benchmark reports it)
        self.replays = 0

    # ----------------------------------------------------------------------------------------- model calls
    def _forward(self, bucket: _Bucket, input_ids, position_ids, cache_position):
        kwargs: dict[str, Any] = dict(input_ids=input_ids, attention_mask=bucket.mask, past_key_values=bucket.cache,
                                      use_cache=True)
        if self.takes_position_ids:
            kwargs["position_ids"] = position_ids
        if self.takes_cache_position:
            kwargs["cache_position"] = cache_position
        if self.takes_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        return self.model(**kwargs).logits[:, -1, :]

    def _step(self, bucket: _Bucket) -> None:
        """One decoding step, in place on the bucket's buffers (what the CUDA graph records)."""
        import torch  # lazy: torch

        logits = self._forward(bucket, bucket.next_input, bucket.position_ids, bucket.cache_position)
        token = torch.where(bucket.done, self.pad, logits.argmax(-1))
        bucket.tokens.index_copy_(1, bucket.step, token[:, None])
        if self.eos is not None:
            bucket.done |= token == self.eos
        bucket.next_input.copy_(token[:, None])
        bucket.position_ids.add_(1)
        bucket.cache_position.add_(1)
        bucket.mask.index_fill_(1, bucket.cache_position, 1)  # generate appends a 1 for every row, finished or not
        bucket.step.add_(1)

    def _capture(self, bucket: _Bucket) -> None:
        """Record `_step` into a CUDA graph (after a warm-up step on a side stream, as torch requires); the
        buffers the warm-up moved are put back by the caller's `_start`."""
        import torch  # lazy: torch

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._step(bucket)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step(bucket)
        bucket.graph = graph
        self.captured += 1

    def release(self) -> None:
        """Drop every bucket's cache and graph (after CUDA out-of-memory: the next batches are smaller)."""
        self.buckets.clear()

    # ----------------------------------------------------------------------------------------- decoding
    def _bucket(self, batch: int, width: int, max_new_tokens: int) -> _Bucket:
        key = (batch, width, max_new_tokens)
        bucket = self.buckets.pop(key, None)
        if bucket is None:
            while len(self.buckets) >= MAX_BUCKETS:
                self.buckets.popitem(last=False)  # the least recently used
            bucket = _Bucket(self.model, batch, width, max_new_tokens, self.device)
        self.buckets[key] = bucket
        return bucket

    def _start(self, bucket: _Bucket, input_ids, attention_mask, real_rows: int) -> None:
        """Prefill the prompt and set every buffer for the first step."""
        import torch  # lazy: torch

        width = bucket.width
        if bucket.used:
            bucket.cache.reset()  # zeroes in place: the captured graph's addresses stay valid
        bucket.used = True
        bucket.mask.zero_()
        bucket.mask[:, :width] = attention_mask
        prompt_positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        logits = self._forward(bucket, input_ids, prompt_positions, torch.arange(width, device=self.device))
        token = logits.argmax(-1)
        bucket.done.zero_()
        bucket.done[real_rows:] = True  # rows that only fill a fixed-size batch
        bucket.tokens.fill_(self.pad)
        bucket.tokens[:, 0] = token
        if self.eos is not None:
            bucket.done |= token == self.eos
        bucket.next_input.copy_(token[:, None])
        bucket.position_ids.copy_(prompt_positions[:, -1:] + 1)
        bucket.cache_position.fill_(width)
        bucket.mask[:, width] = 1
        bucket.step.fill_(1)

    def decode(self, input_ids, attention_mask, max_new_tokens: int, real_rows: int | None = None) -> list[list[int]]:
        """The new tokens of each of the first `real_rows` rows (all by default), padded after a row's stop to
        the batch's length, as `generate(...)[:, width:]` returns them."""
        import torch  # lazy: torch

        batch, width = input_ids.shape
        real_rows = batch if real_rows is None else real_rows
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        bucket = self._bucket(batch, width, max_new_tokens)
        with torch.inference_mode():
            self._start(bucket, input_ids, attention_mask, real_rows)
            if self.graphs and bucket.graph is None and max_new_tokens > 1:
                try:
                    self._capture(bucket)
                except Exception as exc:  # noqa: BLE001  (a model whose forward cannot be captured still decodes)
                    self.graphs = False
                    if self.note:
                        self.note(f"generation: CUDA graph capture failed ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:160]}); decoding without graphs")
                    torch.cuda.synchronize()
                self._start(bucket, input_ids, attention_mask, real_rows)  # the capture ran steps: start again
            return self._run(bucket, max_new_tokens, real_rows)

    def _run(self, bucket: _Bucket, max_new_tokens: int, real_rows: int) -> list[list[int]]:
        stop_at: list[int | None] = [None] * real_rows  # the step a row stopped at (its last real token)
        rows: list[list[int]] = [[] for _ in range(real_rows)]
        steps = 1  # tokens generated so far (the prefill's)
        looked = 0
        while True:
            if steps - looked >= self.check_every or steps >= max_new_tokens:
                looked = self._look(bucket, rows, stop_at, looked, steps)
                if all(s is not None for s in stop_at) or steps >= max_new_tokens:
                    break
            if bucket.graph is not None:
                bucket.graph.replay()
                self.replays += 1
            else:
                self._step(bucket)
            steps += 1
        length = max((s + 1 for s in stop_at if s is not None), default=0)
        if any(s is None for s in stop_at):
            length = max_new_tokens  # generate runs to max_new_tokens while a row has not stopped
        return [(row + [self.pad] * length)[:length] if s is None else row[:s + 1] + [self.pad] * (length - s - 1)
                for row, s in zip(rows, stop_at)]

    def _look(self, bucket: _Bucket, rows: list[list[int]], stop_at: list[int | None], looked: int,
              steps: int) -> int:
        """Take the tokens of steps `looked`..`steps` to the host (one sync), find each open row's stop among
        them and freeze rows that stopped on the newline rule. Returns `steps` (now looked at)."""
        new = bucket.tokens[:len(rows), looked:steps].tolist()
        freeze = []
        for r, tokens in enumerate(new):
            if stop_at[r] is not None:
                continue
            rows[r] += tokens
            for k, token in enumerate(tokens):
                step = looked + k
                if token == self.eos or (token in self.newline_ids and self.is_stop(rows[r][:step + 1])):
                    stop_at[r] = step
                    freeze.append(r)
                    break
        if freeze:
            bucket.done[freeze] = True  # the rows' further tokens are pad (and never read)
        return steps
