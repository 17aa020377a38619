"""The `ait align` stage as a library: records in, aligned records (or Pharaoh lines) out.

    aligner = CorpusAligner(AlignOptions(...))      # or CorpusAligner(config, model=AlignmentModel.load(d))
    for record in records:
        aligner.add(record)                          # RecordError for a bad record (caller decides)
    aligner.fit()                                    # EM (or, with a model, Viterbi only)
    for out in aligner.aligned_records(): ...        # input order, extra fields kept

EM needs several passes over the corpus, so the stage holds the corpus: token ids in memory (4 bytes a
token), the records spooled to a temporary file, and the per-cell pair ids (4 bytes a cell; in a
memory-mapped temporary file above 1 GiB). See corpus.py and docs/align.md.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Literal, Optional

import numpy as np
import orjson

from aligninstruct_cli import console
from aligninstruct_cli.align import spans as spans_mod
from aligninstruct_cli.align.corpus import CellLayout, EncodedCorpus, Vocab
from aligninstruct_cli.align.eflomal_backend import run_eflomal
from aligninstruct_cli.align.model import UNSEEN_T, EMOptions, EMTrainer
from aligninstruct_cli.align.persist import AlignmentModel
from aligninstruct_cli.align.symmetrize import DEFAULT_HEURISTIC, HEURISTICS, needs, symmetrize
from aligninstruct_cli.align.tokenize import get_tokenizer, get_word_splitter, parse_tokenize_option
from aligninstruct_cli.errors import AitError, InputError, RecordError

# ait's defaults, the paper configs' settings: estimation on normalised tokens (punctuation split off,
# lowercased); the output's tokens and span texts are the sentence's own
DEFAULT_TOKENIZE = ("simple", "simple")
from aligninstruct_cli.io import ErrorPolicy, ReadOptions, RecordWriter, read_records
from aligninstruct_cli.options import OptionError, option, option_fields, option_ref

BACKENDS = ("fast_align", "eflomal")
OUTPUT_FORMATS = ("jsonl", "pharaoh")


def _tokenize_option(value) -> tuple[str, str]:
    """`simple`, `simple,chars` (CLI) or [source, target] (config) -> (source tokenizer, target tokenizer)."""
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    return parse_tokenize_option(value)


@dataclass(kw_only=True)
class AlignOptions(ReadOptions, EMOptions):
    """The options of `ait align` (the EM options are `EMOptions`', the input options `ReadOptions`')."""

    output_format: Literal[OUTPUT_FORMATS] = option(  # type: ignore[valid-type]
        "jsonl", flags=("--format",), help="jsonl: aligned records; pharaoh: one `i-j` line per sentence pair "
        "(as fast_align/atools).")
    links: Literal[HEURISTICS] = option(  # type: ignore[valid-type]
        DEFAULT_HEURISTIC, help="Which links to output: one direction, or a symmetrization of both.")
    tokenize: Optional[tuple[str, str]] = option(
        None, parse=_tokenize_option, cli_type=Optional[str], default_doc="simple",
        help="whitespace|simple|chars, or SRC,TGT to differ per side (e.g. simple,chars). simple (the default, "
        "as the paper configs) splits off Unicode punctuation, so gold pairs are words, not `muppets'`; chars is "
        "for scripts without spaces (Khmer, Burmese). With --model: the model's.")
    lowercase: Optional[bool] = option(None, negatable=True, default_doc="on",
                                       help="Lowercase words for the model's estimation (the default, as the paper "
                                            "configs; output tokens and span texts keep the sentence's case). With "
                                            "--model: the model's.")
    max_span: int = option(spans_mod.DEFAULT_MAX_SPAN, min=1, help="Longest span, in words, on each side of a gold "
                           "pair.")
    min_score: float = option(spans_mod.DEFAULT_MIN_SCORE, help="Drop pairs scoring below this (score: geometric "
                              "mean of both directions' lexical probabilities).")
    max_pairs: int = option(spans_mod.DEFAULT_MAX_PAIRS, min=0, help="Keep at most this many pairs per sentence "
                            "(the best-scoring); 0 = no pairs.")
    keep_punct: bool = option(False, help="Keep pairs whose source or target side is punctuation only, or starts or "
                              "ends with punctuation.")
    max_tokens: int = option(1000, min=1, help="Longest sentence, in tokens per side; longer ones are input errors "
                             "(fast_align crashes on longer lines).")
    model: Optional[str] = option(None, metavar="DIR", help="Align with a model saved by --save-model instead of "
                                  "training (EM options ignored; its --tokenize and --lowercase apply).")
    backend: Literal[BACKENDS] = option(  # type: ignore[valid-type]
        "fast_align", help="fast_align (built in) or eflomal (optional extra: pip install "
        "'aligninstruct-cli[eflomal]').")
    threads: int = option(1, min=1, help="Worker threads for pair-id building and EM (each runs single-threaded "
                          "PyTorch ops on its share of the corpus). Use the number of idle cores.")
    work_dir: Optional[str] = option(None, metavar="DIR", default_doc="system temp", help="Where temporary files go "
                                     "(spooled records, large cell-id maps).")
    progress: bool = True  # library only: the CLI shows bars unless -q

    def __post_init__(self) -> None:
        ReadOptions.__post_init__(self)
        EMOptions.__post_init__(self)
        if self.work_dir and not os.path.isdir(self.work_dir):
            raise OptionError(f"{option_ref('work_dir')} {self.work_dir}: no such directory")

    @property
    def em(self) -> EMOptions:
        """Just the EM options (what a saved model records)."""
        return EMOptions(**{f.name: getattr(self, f.name) for f in option_fields(EMOptions)})

    @property
    def directions(self) -> tuple[str, ...]:
        """JSONL output scores pairs from both directions, so it always trains both."""
        return ("forward", "reverse") if self.output_format == "jsonl" else needs(self.links)


class CorpusAligner:
    def __init__(self, config: AlignOptions, model: AlignmentModel | None = None):
        self.config = config
        self.model = model
        if model is not None:
            if config.backend != "fast_align":
                raise OptionError(f"{option_ref('model')} is for {option_ref('backend')} fast_align only")
            missing = [d for d in config.directions if d not in model.tables]
            if missing:
                raise OptionError(f"the model has no {' and '.join(missing)} direction, which {option_ref('links')} "
                                  f"{config.links} / {option_ref('output_format')} {config.output_format} needs",
                                  hint="train it with --links grow-diag-final-and (or JSONL output) to keep both")
            src_vocab = Vocab(model.src_words, frozen=True)
            tgt_vocab = Vocab(model.tgt_words, frozen=True)
        else:
            src_vocab, tgt_vocab = Vocab(), Vocab()
        self.corpus = EncodedCorpus(src_vocab, tgt_vocab)
        # a loaded model decides how words are split and cased: its table is keyed by those words
        self.tokenize: tuple[str, str] = (tuple(model.tokenize) if model is not None  # type: ignore[assignment]
                                          else config.tokenize or DEFAULT_TOKENIZE)
        self.lowercase: bool = model.lowercase if model is not None else config.lowercase in (None, True)
        self._split = (get_word_splitter(self.tokenize[0]), get_word_splitter(self.tokenize[1]))
        self._offsets = (get_tokenizer(self.tokenize[0]), get_tokenizer(self.tokenize[1]))
        self._spool = tempfile.TemporaryFile(prefix="ait-align-records.", dir=config.work_dir)
        self.layout: CellLayout | None = None
        self.trainer: EMTrainer | None = None
        self._lex: dict | None = None  # eflomal: link-count lexical tables
        self._eflomal_links: tuple[list, list] | None = None
        self.fitted = False

    def _bar(self, description: str, total: int | None):
        bar = console.Bar(description, total=total, unit="sentences")
        bar.enabled = bar.enabled and self.config.progress
        return bar

    # ------------------------------------------------------------------------------------------ input
    def tokens(self, record: dict) -> tuple[list[str], list[str]]:
        """The model keys (surface tokens, lowercased with --lowercase) of a record; RecordError if bad."""
        out = []
        lowercase = self.lowercase
        for side, split, name in (("src", self._split[0], self.tokenize[0]),
                                  ("tgt", self._split[1], self.tokenize[1])):
            text = record[side]
            if lowercase and name == "whitespace":
                words = split(text.lower())  # lowercasing never creates or removes whitespace
            else:
                words = split(text)
                if lowercase:
                    words = [w.lower() for w in words]
            if not words:
                raise RecordError("no tokens", field=side)
            if len(words) > self.config.max_tokens:
                raise RecordError(f"{len(words)} tokens, more than --max-tokens {self.config.max_tokens}",
                                  field=side, hint="raise --max-tokens, or drop such lines with --on-error skip")
            out.append(words)
        return out[0], out[1]

    def add(self, record: dict) -> None:
        if self.fitted:
            raise RuntimeError("add() after fit()")
        for side in ("src", "tgt"):
            if not isinstance(record.get(side), str):
                raise RecordError("expected a string", field=side)
        src, tgt = self.tokens(record)
        self.corpus.add(src, tgt)
        self._spool.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def add_all(self, records: Iterable[dict]) -> None:
        with self._bar("reading", None) as bar:
            for k, record in enumerate(records, 1):
                self.add(record)
                if k % 2048 == 0:
                    bar.advance(2048)

    def __len__(self) -> int:
        return len(self.corpus)

    # ------------------------------------------------------------------------------------------ fitting
    def fit(self) -> None:
        if self.fitted:
            return
        if self.config.backend == "eflomal":
            self._fit_eflomal()
        else:
            self._fit_fast_align()
        self.fitted = True

    def _fit_fast_align(self) -> None:
        import torch  # lazy: torch

        # parallelism comes from lanes (config.threads); intra-op threads on these small ops only add
        # barrier waits, which stall for whole scheduler slices when the cores are busy
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._fit_fast_align_single_threaded()
        finally:
            torch.set_num_threads(before)

    def _fit_fast_align_single_threaded(self) -> None:
        import torch  # lazy: torch

        cfg = self.config
        n = len(self.corpus)
        layout = self.layout = CellLayout(self.corpus, work_dir=cfg.work_dir)
        src_vocab, tgt_vocab = self.corpus.src_vocab, self.corpus.tgt_vocab
        if self.model is None:
            with self._bar("word pairs", n) as bar:
                keys = layout.build_pair_ids(len(tgt_vocab), on_shard=bar.advance, threads=cfg.threads)
            self.corpus.release_tokens()  # the layout holds its own (block-ordered) copy
            n_tgt = len(tgt_vocab)
            # int32 rows instead of the int64 keys: 8 bytes a pair instead of 16 (keys rebuilt on save)
            pair_src, pair_tgt = (keys // n_tgt).to(torch.int32), (keys % n_tgt).to(torch.int32)
            n_pairs = keys.numel()
            del keys
            trainer = self.trainer = EMTrainer(
                layout, cfg.em, n_pairs=n_pairs, pair_src=pair_src, pair_tgt=pair_tgt, n_src=len(src_vocab),
                n_tgt=n_tgt, directions=cfg.directions, lanes=cfg.threads)
            names = [f"EM {k + 1}/{cfg.em.iterations}" for k in range(cfg.em.iterations)]
            names[-1] += " (Viterbi)"
            with self._bar(names[0], n) as bar:
                trainer.train(on_chunk=bar.advance,
                              on_iteration=lambda it, final: None if final else bar.phase(names[it + 1]))
            for d in trainer.directions.values():
                d.t[-1] = UNSEEN_T
                d.t_null[-1] = UNSEEN_T
        else:
            model = self.model
            keys = torch.from_numpy(np.asarray(model.keys, dtype=np.int64))
            layout.lookup_pair_ids(keys, len(model.tgt_words), src_vocab.known, tgt_vocab.known)
            self.corpus.release_tokens()
            n_pairs = keys.numel()
            del keys
            trainer = self.trainer = EMTrainer(
                layout, cfg.em, n_pairs=n_pairs, pair_src=None, pair_tgt=None, n_src=len(src_vocab),
                n_tgt=len(tgt_vocab), directions=cfg.directions, lanes=cfg.threads)
            for name, d in trainer.directions.items():
                table = model.tables[name]
                d.tension = table["tension"]
                d.t = torch.from_numpy(np.asarray(table["t"], dtype=np.float32).copy())
                n_pred = len(tgt_vocab) if name == "forward" else len(src_vocab)
                null = np.full(n_pred + 1, UNSEEN_T, np.float32)
                known = len(table["null"]) - 1
                null[:known] = table["null"][:known]
                d.t_null = torch.from_numpy(null)
            with self._bar("aligning", n) as bar:
                trainer.viterbi(on_chunk=bar.advance)

    def _fit_eflomal(self) -> None:
        try:
            import eflomal  # lazy: eflomal (optional), imported here to say it is missing  # noqa: F401
        except ImportError:
            raise OptionError(f"{option_ref('backend')} eflomal needs the optional package eflomal",
                           hint="pip install 'aligninstruct-cli[eflomal]' (or pip install eflomal==2.0.0)") from None
        if len(self.corpus) == 0:
            self._eflomal_links = ([], [])
            return
        console.info(f"eflomal: aligning {len(self.corpus):,} sentence pairs (no progress bar)")
        self._eflomal_links = run_eflomal(*self.corpus.arrays(), work_dir=self.config.work_dir)

    # ------------------------------------------------------------------------------------------ model
    def trained_model(self) -> AlignmentModel:
        if not self.fitted or self.trainer is None:
            raise OptionError(f"no fast_align model to save (only {option_ref('backend')} fast_align keeps one)")
        if self.model is not None:
            return self.model
        tables = {name: {"t": d.t.numpy(), "null": d.t_null.numpy(), "tension": float(d.tension)}
                  for name, d in self.trainer.directions.items()}
        import torch  # lazy: torch

        keys = (self.trainer.pair_src.to(torch.int64) * len(self.corpus.tgt_vocab)
                + self.trainer.pair_tgt.to(torch.int64))
        return AlignmentModel(list(self.corpus.src_vocab.words), list(self.corpus.tgt_vocab.words),
                              keys.numpy(), tables, self.config.em, tuple(self.tokenize), self.lowercase)

    # ------------------------------------------------------------------------------------------ output
    def directional_links(self, k: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(forward, reverse) links of sentence k (input order), source-target order."""
        if self._eflomal_links is not None:
            return self._eflomal_links[0][k], self._eflomal_links[1][k]
        layout, trainer = self.layout, self.trainer
        fwd: list[tuple[int, int]] = []
        rev: list[tuple[int, int]] = []
        if trainer.forward_links is not None:
            o, m = layout.sent_tgt[k], layout.tgt_len[k]
            fwd = [(i, j) for j, i in enumerate(trainer.forward_links[o:o + m].tolist()) if i >= 0]
        if trainer.reverse_links is not None:
            o, n = layout.sent_src[k], layout.src_len[k]
            rev = [(i, j) for i, j in enumerate(trainer.reverse_links[o:o + n].tolist()) if j >= 0]
        return fwd, rev

    def links(self, k: int) -> list[tuple[int, int]]:
        fwd, rev = self.directional_links(k)
        return symmetrize(fwd, rev, self.config.links)

    def lexical_tables(self, k: int):
        """([m, n] t(tgt_j|src_i), [m, n] t(src_i|tgt_j)) of sentence k, as nested lists."""
        if self._eflomal_links is not None:
            return self._eflomal_tables(k)
        layout, trainer = self.layout, self.trainer
        m, n = int(layout.tgt_len[k]), int(layout.src_len[k])
        o = layout.sent_cell[k]
        ids = np.asarray(layout.cell_ids[o:o + m * n], dtype=np.int64)
        return (trainer.directions["forward"].t.numpy()[ids].reshape(m, n).tolist(),
                trainer.directions["reverse"].t.numpy()[ids].reshape(m, n).tolist())

    def _eflomal_tables(self, k: int):
        """eflomal has no lexical tables: relative link frequencies over the corpus stand in for them
        (t(f|e) = c(e,f) / c(e), t(e|f) = c(e,f) / c(f), counted on the output links)."""
        if self._lex is None:
            self._lex = _link_count_tables(self)
        lex = self._lex
        src, tgt, src_len, tgt_len = self.corpus.arrays()
        so, to = lex["src_off"][k], lex["tgt_off"][k]
        s = src[so:so + src_len[k]].astype(np.int64)
        t = tgt[to:to + tgt_len[k]].astype(np.int64)
        keys = s[None, :] * lex["n_tgt"] + t[:, None]
        pos = np.searchsorted(lex["keys"], keys).clip(max=max(len(lex["keys"]) - 1, 0))
        found = lex["keys"][pos] == keys if len(lex["keys"]) else np.zeros(keys.shape, bool)
        counts = np.where(found, lex["counts"][pos], 0.0)
        tf = counts / np.maximum(lex["src_count"][s][None, :], 1)
        tr = counts / np.maximum(lex["tgt_count"][t][:, None], 1)
        return tf.tolist(), tr.tolist()

    def _spooled(self) -> Iterator[dict]:
        self._spool.flush()
        self._spool.seek(0)
        for line in self._spool:
            yield orjson.loads(line)

    def aligned_records(self) -> Iterator[dict]:
        """Input records (input order) with src_tokens, tgt_tokens, links and pairs added."""
        self.fit()
        cfg = self.config
        src_off_fn, tgt_off_fn = self._offsets
        with self._bar("writing", len(self)) as bar:
            for k, record in enumerate(self._spooled()):
                src_text, tgt_text = record["src"], record["tgt"]
                so, to = src_off_fn(src_text), tgt_off_fn(tgt_text)
                src_tokens = [src_text[a:b] for a, b in so]
                tgt_tokens = [tgt_text[a:b] for a, b in to]
                links = self.links(k)
                pairs: list[dict] = []
                if cfg.max_pairs > 0 and links:
                    tf, tr = self.lexical_tables(k)
                    pairs = spans_mod.extract_pairs(
                        links, src_tokens, tgt_tokens, tf, tr, src_text=src_text, tgt_text=tgt_text,
                        src_offsets=so, tgt_offsets=to, max_span=cfg.max_span, min_score=cfg.min_score,
                        max_pairs=cfg.max_pairs, keep_punct=cfg.keep_punct)
                record["src_tokens"] = src_tokens
                record["tgt_tokens"] = tgt_tokens
                record["links"] = [[i, j] for i, j in links]
                record["pairs"] = pairs
                yield record
                if (k + 1) % 1024 == 0:
                    bar.advance(1024)
            bar.advance(len(self) % 1024)

    def pharaoh_lines(self) -> Iterator[str]:
        """One `i-j ...` line per sentence pair (input order)."""
        self.fit()
        with self._bar("writing", len(self)) as bar:
            if self._eflomal_links is None and self.config.links in ("forward", "reverse"):
                yield from self._fast_directional_lines(bar.advance)
                return
            for k in range(len(self)):
                yield " ".join(f"{i}-{j}" for i, j in self.links(k))
                if (k + 1) % 4096 == 0:
                    bar.advance(4096)
            bar.advance(len(self) % 4096)

    def _fast_directional_lines(self, advance) -> Iterator[str]:
        """forward / reverse Pharaoh lines without building link tuples (the benchmarked path)."""
        layout, trainer = self.layout, self.trainer
        forward = self.config.links == "forward"
        arr = trainer.forward_links if forward else trainer.reverse_links
        offsets = layout.sent_tgt if forward else layout.sent_src
        lengths = layout.tgt_len if forward else layout.src_len
        longest = max(int(layout.src_len.max(initial=0)), int(layout.tgt_len.max(initial=0)))
        numbers = [str(x) for x in range(longest + 1)]
        for k, (o, length) in enumerate(zip(offsets.tolist(), lengths.tolist())):
            row = arr[o:o + length].tolist()
            if forward:
                yield " ".join([numbers[i] + "-" + numbers[j] for j, i in enumerate(row) if i >= 0])
            else:
                yield " ".join([numbers[i] + "-" + numbers[j] for i, j in enumerate(row) if j >= 0])
            if (k + 1) % 4096 == 0:
                advance(4096)
        advance(len(offsets) % 4096)

    def close(self) -> None:
        self._spool.close()
        if self.layout is not None:
            self.layout.close()

    def __enter__(self) -> "CorpusAligner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _link_count_tables(aligner: CorpusAligner) -> dict:
    src, tgt, src_len, tgt_len = aligner.corpus.arrays()
    src_off = np.concatenate([[0], np.cumsum(src_len, dtype=np.int64)])
    tgt_off = np.concatenate([[0], np.cumsum(tgt_len, dtype=np.int64)])
    n_tgt = len(aligner.corpus.tgt_vocab)
    keys = []
    for k in range(len(aligner)):
        links = aligner.links(k)
        if links:
            li = np.asarray(links, dtype=np.int64)
            keys.append(src[src_off[k] + li[:, 0]].astype(np.int64) * n_tgt + tgt[tgt_off[k] + li[:, 1]])
    allkeys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    uniq, counts = np.unique(allkeys, return_counts=True)
    src_count = np.bincount(uniq // n_tgt, weights=counts, minlength=len(aligner.corpus.src_vocab)) if n_tgt else np.zeros(0)
    tgt_count = np.bincount(uniq % n_tgt, weights=counts, minlength=n_tgt) if n_tgt else np.zeros(0)
    return {"keys": uniq, "counts": counts.astype(np.float64), "n_tgt": n_tgt, "src_count": src_count,
            "tgt_count": tgt_count, "src_off": src_off, "tgt_off": tgt_off}


def align_records(records: Iterable[dict], config: AlignOptions | None = None,
                  model: AlignmentModel | None = None) -> list[dict]:
    """Convenience for library users and tests: align a small collection in memory."""
    config = config or AlignOptions(progress=False)
    with CorpusAligner(config, model) as aligner:
        for record in records:
            aligner.add(dict(record))
        return list(aligner.aligned_records())


def align_file(options: AlignOptions, input: str, output: str, save_model: str | None = None, *,
               policy: ErrorPolicy) -> str | None:
    """`ait align` on files: align the parallel records of `input` (a loaded `--model`, or one trained here and
    saved to `save_model`) and write aligned records or Pharaoh lines to `output`. Bad records go to `policy`.
    Returns the summary line for stderr; None when there was nothing to align (an empty output is written)."""
    if options.model and save_model:
        raise AitError("--model and --save-model exclude each other (a loaded model is not retrained)")
    if save_model and options.backend != "fast_align":
        raise AitError("--save-model needs --backend fast_align (eflomal keeps no model)")
    loaded = AlignmentModel.load(options.model) if options.model else None
    if loaded is not None:
        if options.tokenize is not None and tuple(options.tokenize) != tuple(loaded.tokenize):
            console.warn(f"--tokenize {','.join(options.tokenize)} ignored: the model was trained with "
                         f"{','.join(loaded.tokenize)}")
        if options.lowercase is not None and options.lowercase != loaded.lowercase:
            console.warn("--lowercase/--no-lowercase ignored: the model decides")
    started = time.perf_counter()
    with CorpusAligner(options, loaded) as aligner:
        located = read_records(input, "parallel", fmt=options.input_format, src_lang=options.src_lang,
                               tgt_lang=options.tgt_lang, policy=policy, with_location=True)
        for line_no, record in console.track(located, "reading", unit="sentences", every=4096):
            try:
                aligner.add(record)
            except RecordError as exc:
                policy.handle(InputError(input, line_no, exc.message, field=exc.field, hint=exc.hint))
        n = len(aligner)
        if n == 0:
            console.warn(f"{input}: no sentence pairs to align; the output is empty")
            with RecordWriter(output):
                pass
            return None
        aligner.fit()
        if save_model:
            aligner.trained_model().save(save_model)
        n_links = n_pairs = 0
        signals = dict.fromkeys(spans_mod.PAIR_SIGNALS, 0)
        with RecordWriter(output) as out:
            if options.output_format == "pharaoh":
                for line in aligner.pharaoh_lines():
                    out.write_line(line)
            else:
                for rec in aligner.aligned_records():
                    n_links += len(rec["links"])
                    n_pairs += len(rec["pairs"])
                    for pair in rec["pairs"]:
                        for signal in spans_mod.pair_signals(pair):
                            signals[signal] += 1
                    out.write(rec)
        elapsed = time.perf_counter() - started
        summary = f"aligned {n:,} sentence pairs in {elapsed:,.1f}s ({n / max(elapsed, 1e-9):,.0f} sentences/s)"
        if options.output_format == "jsonl":
            summary += f"; {n_links:,} links ({options.links}), {n_pairs:,} span pairs"
            if n_pairs:  # the gold pairs' quality signal: high shares mean the tokenization keeps punctuation
                summary += " (" + ", ".join(f"{signals[k] / n_pairs:.1%} {k}" for k in spans_mod.PAIR_SIGNALS) + ")"
        if aligner.trainer is not None:
            summary += "; tension " + ", ".join(f"{name} {d.tension:.3f}" for name, d in aligner.trainer.directions.items())
        if save_model:
            summary += f"; model saved to {save_model}"
    return summary
