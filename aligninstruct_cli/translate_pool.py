"""`ait translate --num-gpus N`: N worker processes, one per device, each with its own copy of the model.

The launching process reads the input, cuts it into the chunks a single process would make
(`generation.default_chunk_size`), hands whole chunks to the workers in turn and yields the translated
chunks in input order. A chunk is the unit of length sorting, so every sentence meets the same batch
neighbours as in a one-process run, and the output file is the same. Resume, the manifest and the output
file stay with the launching process, exactly as with one process.

Memory: at most `IN_FLIGHT` chunks per worker are out at once (waiting or being translated), and
finished chunks wait only for the ones before them.

Workers are started with `spawn` (CUDA cannot be used in a forked child), ignore SIGINT (the launching
process stops them), and exit when the launching process dies, however it died (the watch `ait train`'s
ranks keep: PR_SET_PDEATHSIG on Linux and a thread polling the parent), so no orphan keeps a GPU.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import traceback
from dataclasses import replace
from typing import Callable, Iterable, Iterator

from aligninstruct_cli import hub
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.generation import (GenerationStats, TranslateOptions, Translator, chunked,
                                          default_chunk_size)
from aligninstruct_cli.languages import get_language, use_language_file, user_language_file
from aligninstruct_cli.models import load_model
from aligninstruct_cli.options import OptionError, option_ref
from aligninstruct_cli.training.distributed import watch_launching_process

IN_FLIGHT = 2  # chunks per worker: one being translated, one waiting, so a worker never idles
POLL_S = 0.5  # how often a waiting parent checks that its workers are alive


def worker_devices(options: TranslateOptions) -> list[str]:
    """One device per worker: cuda:0..N-1 (or the GPUs from cuda:K on), or N times the CPU."""
    import torch  # lazy: torch

    n = options.num_gpus
    device = options.device
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return ["cpu"] * n
    available = torch.cuda.device_count()
    first = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
    if first + n > available:
        raise OptionError(f"{option_ref('num_gpus')} {n} from {device}: this machine has {available} GPU(s)",
                          hint=f"use at most {max(available - first, 0)}, or CUDA_VISIBLE_DEVICES")
    return [f"cuda:{first + i}" for i in range(n)]


class TranslatorPool:
    """`Translator.translate_chunks` spread over worker processes; use as a context manager."""

    def __init__(self, options: TranslateOptions, *, on_batch: Callable[[int, int], None] | None = None):
        self.options = options
        self.on_batch = on_batch
        self.devices = worker_devices(options)
        self.stats = GenerationStats()
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        self.tasks = [context.Queue() for _ in self.devices]
        threads = max(1, (os.cpu_count() or 1) // len(self.devices))
        self.workers = [context.Process(target=_work, name=f"ait-translate-{rank}", daemon=True,
                                        args=(rank, replace(options, device=device, num_gpus=1), threads,
                                              os.getpid(), self.tasks[rank], self.results, user_language_file(),
                                              hub.switched_offline()))
                        for rank, device in enumerate(self.devices)]

    def __enter__(self) -> "TranslatorPool":
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        for tasks in self.tasks:
            try:
                tasks.put(None)
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.join(timeout=5 if exc[0] is None else 0.5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)

    def translate_chunks(self, records: Iterable[dict], *, pivot: str | None = None,
                         chunk_size: int | None = None) -> Iterator[list[dict]]:
        """The translated chunks, in input order (see the module docstring)."""
        pivot_code = get_language(pivot).code if pivot else None
        chunks = enumerate(chunked(records, chunk_size or default_chunk_size(self.options.batch_size)))
        done: dict[int, list[dict]] = {}
        sent = next_out = 0
        limit = IN_FLIGHT * len(self.workers)
        exhausted = False
        while True:
            while not exhausted and sent - next_out < limit:
                item = next(chunks, None)
                if item is None:
                    exhausted = True
                    break
                self.tasks[item[0] % len(self.workers)].put((item[0], item[1], pivot_code))
                sent += 1
            if exhausted and next_out == sent:
                return
            while next_out not in done:
                self._receive(done)
            yield done.pop(next_out)
            next_out += 1

    def _receive(self, done: dict[int, list[dict]]) -> None:
        try:
            message = self.results.get(timeout=POLL_S)
        except queue.Empty:
            for rank, worker in enumerate(self.workers):
                if not worker.is_alive():
                    raise AitError(f"translate worker {rank} ({self.devices[rank]}) stopped (exit code "
                                   f"{worker.exitcode}) without an error message") from None
            return
        kind = message[0]
        if kind == "batch":
            self.stats.new_tokens += message[2]
            self.stats.sentences += message[1]
            if self.on_batch:
                self.on_batch(message[1], message[2])
        elif kind == "chunk":
            done[message[1]] = message[2]
        elif kind == "seconds":
            self.stats.seconds = max(self.stats.seconds, message[1])  # the workers ran side by side
            self.stats.at_limit += message[2]
        elif kind == "option-error":  # re-raised here so the CLI names the flag, a config file its key
            raise OptionError(message[1], hint=message[2])
        elif kind == "user-error":
            raise AitError(message[1], hint=message[2])
        else:  # "crash": a bug, with the worker's traceback
            raise RuntimeError(f"translate worker {message[1]} failed:\n{message[2]}")


def _work(rank: int, options: TranslateOptions, threads: int, parent_pid: int, tasks, results,
          language_file: str | None, offline: bool) -> None:
    """A worker: load the model on its device, translate the chunks it is given until None (with the parent's
    user language file, for the prompts' language names, and its hub offline switch)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    watch_launching_process(parent_pid, what="ait translate worker")  # no orphan keeps a GPU
    try:
        if language_file:
            use_language_file(language_file)
        if offline:
            hub.go_offline()
        import torch  # lazy: torch

        if options.device == "cpu":
            torch.set_num_threads(threads)
        loaded = load_model(options.model, options.adapter, merge=options.merges,
                            device=options.device, precision=options.precision)
        translator = Translator(loaded, options, on_batch=lambda n, t: results.put(("batch", n, t)))
        while True:
            task = tasks.get()
            if task is None:
                break
            index, chunk, pivot = task
            results.put(("chunk", index, translator.translate_chunk(chunk, pivot)))
        results.put(("seconds", translator.stats.seconds, translator.stats.at_limit))
    except OptionError as exc:
        results.put(("option-error", exc.template, exc.hint))
    except AitError as exc:  # a user error: the parent shows it as one line
        results.put(("user-error", exc.message, exc.hint))
    except BaseException:  # noqa: BLE001  (reported to the parent, which raises it)
        results.put(("crash", rank, traceback.format_exc()))
