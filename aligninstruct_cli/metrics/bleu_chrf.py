"""BLEU, chrF++ and TER through sacrebleu, exactly as `sacrebleu` computes them.

BLEU's tokenizer follows the target language (zh → zh, ja → ja-mecab, ko → ko-mecab, every other language
13a, sacrebleu's own recommendation) unless the `tokenize` option overrides it. sacrebleu's SentencePiece
tokenizers (flores200 = spBLEU, flores101, spm) need its model file: at sacrebleu's own cache path
(downloaded there once, as sacrebleu does) or given as `spm_model`; either is checked before anything is
scored. chrF++ is `CHRF(word_order=2)` (`chrf_word_order` changes it: 0 is chrF). TER is sacrebleu's
default TER. Every corpus score carries sacrebleu's signature string: `nrefs` counts the reference streams
(several `--refs`: each segment is scored against all of them, as sacrebleu does), `bs` and `seed` are
there when `--confidence` resampled the score.
Sentence-level BLEU uses `effective_order=True` (sacrebleu's advice for single sentences), which its
signature states (`eff:yes`).

The statistics are sacrebleu's per-segment sufficient statistics (integer counts); a corpus score is
sacrebleu's score of their integer sums, as its own `corpus_score` computes it, and a bootstrap resample's
the score of float32 sums, as its significance module computes it. Only the statistics and the signature
depend on the tokenizer: the score of given statistics does not.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from aligninstruct_cli import console, hub
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.languages import find_language
from aligninstruct_cli.metrics.base import Metric
from aligninstruct_cli.options import OptionError, option_ref

if TYPE_CHECKING:
    from aligninstruct_cli.metrics.score_options import ScoreOptions

# Target language → sacrebleu BLEU tokenizer; every other language gets DEFAULT_TOKENIZER.
BLEU_TOKENIZER_BY_LANG = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}
DEFAULT_TOKENIZER = "13a"
CHRF_WORD_ORDER = 2  # chrF++
SPM_DOWNLOAD_TIMEOUT_S = 60  # per socket operation: a blocked network fails instead of hanging
STATS_CHUNK = 4_000  # segments whose statistics sacrebleu computes at once (bounded memory)
STATS_DTYPE = np.int32  # a segment's counts; sums are taken in int64 (corpus_score) or float (resamples)


def check_tokenizer(tokenizer: str) -> str:
    """`tokenizer` unchanged when sacrebleu's BLEU knows it (the `tokenize` option's check)."""
    from sacrebleu.metrics.bleu import BLEU as SacreBLEU  # lazy: sacrebleu

    if tokenizer not in SacreBLEU.TOKENIZERS:
        raise OptionError(f"{option_ref('tokenize')} {tokenizer!r}: not a sacrebleu tokenizer",
                          hint=f"one of {', '.join(SacreBLEU.TOKENIZERS)}")
    return tokenizer


# ------------------------------------------------------------------------------------ SentencePiece models
def spm_tokenizers() -> tuple[str, ...]:
    """sacrebleu's tokenizers that need a SentencePiece model (flores200, flores101, spm, ...)."""
    from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS  # lazy: sacrebleu

    return tuple(SPM_MODELS)


def spm_model_url(tokenizer: str) -> str:
    from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS  # lazy: sacrebleu

    return SPM_MODELS[tokenizer]["url"]


def sacrebleu_spm_path(tokenizer: str) -> Path:
    """Where sacrebleu looks for the tokenizer's model: $SACREBLEU (default ~/.sacrebleu)/models/<url name>."""
    from sacrebleu.tokenizers import tokenizer_spm  # lazy: sacrebleu

    return Path(tokenizer_spm.SACREBLEU_DIR, "models", os.path.basename(spm_model_url(tokenizer)))


OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def check_spm_model(tokenizer: str, spm_model: str | None = None) -> None:
    """That sentencepiece and the tokenizer's model are at hand: `spm_model`, else sacrebleu's cache path
    (downloaded there now, as sacrebleu would, when it is missing). A clean error otherwise."""
    try:
        import sentencepiece  # lazy: sentencepiece (optional)
    except ImportError:
        raise AitError(f"BLEU tokenizer {tokenizer} needs the sentencepiece package, which is not installed",
                       hint="pip install sentencepiece") from None
    if spm_model:
        path = Path(spm_model).expanduser()
        if not path.is_file():
            raise OptionError(f"{option_ref('spm_model')} {spm_model}: no such file")
    else:
        path = sacrebleu_spm_path(tokenizer)
        if not (path.is_file() and path.stat().st_size):
            why = _download_spm_model(tokenizer, path)
            if why is not None:
                raise OptionError(
                    f"{option_ref('tokenize')} {tokenizer} needs sacrebleu's SentencePiece model, which is not at "
                    f"{path} and could not be downloaded from {spm_model_url(tokenizer)} ({why}). Give the model "
                    f"file with {option_ref('spm_model')} PATH, or run once with network access (sacrebleu keeps "
                    f"the model at that path; the SACREBLEU environment variable moves its directory).")
    try:
        sentencepiece.SentencePieceProcessor().Load(str(path))
    except (RuntimeError, OSError) as exc:
        raise AitError(f"{path}: not a SentencePiece model ({str(exc).strip().splitlines()[0]})",
                       hint=f"the model of tokenizer {tokenizer} is {spm_model_url(tokenizer)}") from None


def _download_spm_model(tokenizer: str, path: Path) -> str | None:
    """sacrebleu's own download of the model to `path`; None when it worked, else why not. Offline
    (HF_HUB_OFFLINE, the usual switch of an offline machine) nothing is tried."""
    from sacrebleu.utils import download_file  # lazy: sacrebleu

    if any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes") for var in OFFLINE_ENV):
        return f"offline: {'/'.join(OFFLINE_ENV)} is set"

    url = spm_model_url(tokenizer)
    unreachable = hub.unreachable_reason(url)  # in a second, not after the download's timeouts
    if unreachable is not None:
        return unreachable
    console.info(f"downloading sacrebleu's {tokenizer} SentencePiece model from {url} to {path}")
    default_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(SPM_DOWNLOAD_TIMEOUT_S)
    try:
        download_file(url, str(path))
    except (Exception, SystemExit) as exc:  # urllib's errors; sacrebleu exits on an SSL error
        path.unlink(missing_ok=True)  # a partial file would pass for the model next time
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    finally:
        socket.setdefaulttimeout(default_timeout)
    return None


@contextmanager
def sacrebleu_spm_dir(tokenizer: str, spm_model: str | None) -> Iterator[None]:
    """With `spm_model`, sacrebleu finds it while a tokenizer is made: its model directory points at a
    temporary one that links the file under the name sacrebleu expects (the model is loaded on creation)."""
    if not spm_model or tokenizer not in spm_tokenizers():
        yield
        return
    from sacrebleu.tokenizers import tokenizer_spm  # lazy: sacrebleu

    with tempfile.TemporaryDirectory(prefix="ait-spm-") as tmp:
        link = Path(tmp, "models", os.path.basename(spm_model_url(tokenizer)))
        link.parent.mkdir()
        try:
            link.symlink_to(Path(spm_model).expanduser().resolve())
        except OSError:  # no symlinks here (some Windows setups): a copy does too
            shutil.copyfile(Path(spm_model).expanduser(), link)
        sacrebleu_dir = tokenizer_spm.SACREBLEU_DIR
        tokenizer_spm.SACREBLEU_DIR = tmp
        try:
            yield
        finally:
            tokenizer_spm.SACREBLEU_DIR = sacrebleu_dir


# ------------------------------------------------------------------------------------------------ metrics
def bleu_tokenizer(tgt_lang: str, override: str | None = None) -> str:
    if override:
        return check_tokenizer(override)
    lang = find_language(tgt_lang)
    code = lang.code if lang else tgt_lang.lower()
    return BLEU_TOKENIZER_BY_LANG.get(code, DEFAULT_TOKENIZER)


class SacrebleuMetric(Metric):
    """A sacrebleu metric: its statistics, its arithmetic, its signatures. Subclasses say which sacrebleu
    object a target language needs (`_variant`) and make it (`_make`). `nrefs`: reference streams per
    segment; `bootstrap` (resamples, seed): what `--confidence` resampled with, for the signature."""

    multi_reference = True
    stats_dtype: Any = STATS_DTYPE

    def __init__(self, *, nrefs: int = 1, bootstrap: tuple[int, int] | None = None) -> None:
        self.nrefs = nrefs
        self.bootstrap = bootstrap
        self._objects: dict[tuple[Any, bool], Any] = {}
        self._scorer = self._make(self._scoring_variant(), sentence=False)
        self._sentence_scorer = self._make(self._scoring_variant(), sentence=True)

    def _variant(self, tgt_lang: str) -> Any:
        """What about the target language changes the statistics (BLEU: the tokenizer)."""
        return None

    def _scoring_variant(self) -> Any:
        """The variant whose objects score statistics (any would do: the score of given statistics does not
        depend on it)."""
        return None

    def _make(self, variant: Any, *, sentence: bool) -> Any:
        raise NotImplementedError

    def _object(self, tgt_lang: str, *, sentence: bool = False) -> Any:
        """The sacrebleu object for `tgt_lang`, made once, and tried once on a toy segment: that fails here,
        not mid-run, when e.g. MeCab is missing, and gives the object its signature's `nrefs`."""
        key = (self._variant(tgt_lang), sentence)
        if key not in self._objects:
            try:
                metric = self._make(key[0], sentence=sentence)
                metric.corpus_score(["a"], [["a"]] * self.nrefs)
            except (ImportError, RuntimeError) as exc:  # only BLEU's tokenizers can be missing
                raise AitError(f"{self.label} tokenizer {key[0]!r} (target language {tgt_lang}) is unavailable: "
                               f"{str(exc).strip().splitlines()[0]}",
                               hint="pip install 'sacrebleu[ja]' (ja) or 'sacrebleu[ko]' (ko), "
                                    "or pass --tokenize") from None
            if self.bootstrap and not sentence:  # as sacrebleu's corpus_score(n_bootstrap=...) leaves them
                metric.n_bootstrap, metric.seed = self.bootstrap[0], str(self.bootstrap[1])
            self._objects[key] = metric
        return self._objects[key]

    def segment_stats(self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str],
                      tgt_langs: Sequence[str], more_refs: Sequence[Sequence[str]] = ()) -> np.ndarray:
        """sacrebleu's statistics, `STATS_CHUNK` segments at a time: sacrebleu keeps the n-gram counts of every
        reference it is given (Python Counters, kilobytes a segment), so a whole large test set at once would
        need memory in proportion; each segment's row does not depend on the others, so chunks give the same
        numbers. Rows are int32 (counts of one segment's n-grams; TER's float64). `more_refs`: further
        reference streams, each in the order of `refs`."""
        variants = {lang: self._variant(lang) for lang in dict.fromkeys(tgt_langs)}
        members: dict[Any, list[int]] = {}
        for k, lang in enumerate(tgt_langs):
            members.setdefault(variants[lang], []).append(k)
        out: np.ndarray | None = None
        for idx in members.values():
            metric = self._object(tgt_langs[idx[0]])
            for start in range(0, len(idx), STATS_CHUNK):
                chunk = idx[start:start + STATS_CHUNK]
                streams = [[stream[k] for k in chunk] for stream in (refs, *more_refs)]
                stats = metric._extract_corpus_statistics([hyps[k] for k in chunk], streams)
                rows = np.array(stats, dtype=np.int64 if self.stats_dtype is STATS_DTYPE else np.float64)
                if out is None:
                    out = np.zeros((len(hyps), rows.shape[1]), dtype=self.stats_dtype)
                out[chunk] = rows
        return out if out is not None else np.zeros((0, 0), dtype=self.stats_dtype)

    def corpus_score(self, stats: np.ndarray) -> float:
        return self._scorer._compute_score_from_stats([int(v) for v in stats.sum(axis=0, dtype=np.int64)]).score

    def resample_score(self, summed: np.ndarray, n_segments: int) -> float:
        # float32, as sacrebleu's significance module passes them (the sums are exact integers either way;
        # the division inside the metric is not)
        return self._scorer._compute_score_from_stats(summed.astype(np.float32)).score

    def sentence_score(self, row: np.ndarray) -> float:
        return self._sentence_scorer._compute_score_from_stats([int(v) for v in row]).score

    def signature(self, tgt_lang: str) -> str:
        return self._object(tgt_lang).get_signature().format()

    def sentence_signature(self, tgt_lang: str) -> str:
        return self._object(tgt_lang, sentence=True).get_signature().format()


class BLEU(SacrebleuMetric):
    name = "bleu"
    label = "BLEU"

    def __init__(self, tokenize: str | None = None, spm_model: str | None = None, lowercase: bool = False,
                 **common: Any) -> None:
        """`spm_model`: the model file of a SentencePiece `tokenize` (default: sacrebleu's); `lowercase`:
        sacrebleu's -lc; `common`: SacrebleuMetric's."""
        self.tokenize = check_tokenizer(tokenize) if tokenize else None
        self.spm_model = spm_model
        self.lowercase = lowercase
        if self.tokenize in spm_tokenizers():
            check_spm_model(self.tokenize, spm_model)
        super().__init__(**common)

    @classmethod
    def from_options(cls, options: ScoreOptions, *, progress: bool = False) -> BLEU:
        return cls(options.tokenize, options.spm_model, options.lowercase, **sacrebleu_settings(options))

    def _variant(self, tgt_lang: str) -> str:
        return bleu_tokenizer(tgt_lang, self.tokenize)

    def _scoring_variant(self) -> str:
        return "none"  # no tokenizer to load

    def _make(self, tokenizer: str, *, sentence: bool) -> Any:
        from sacrebleu.metrics import BLEU as SacreBLEU  # lazy: sacrebleu

        with sacrebleu_spm_dir(tokenizer, self.spm_model):
            return SacreBLEU(tokenize=tokenizer, effective_order=sentence, lowercase=self.lowercase)


def sacrebleu_settings(options: ScoreOptions) -> dict[str, Any]:
    """What every sacrebleu metric takes from the options: the number of reference streams, and the
    resamples and seed of `--confidence`."""
    return {"nrefs": len(options.refs or [None]),
            "bootstrap": (options.bootstrap_samples, options.seed) if options.confidence else None}


class CHRF(SacrebleuMetric):
    name = "chrf"
    label = "chrF++"

    def __init__(self, word_order: int = CHRF_WORD_ORDER, **common: Any) -> None:
        """`word_order`: word n-grams added to chrF's characters (2: chrF++, 0: chrF)."""
        self.word_order = word_order
        if word_order != CHRF_WORD_ORDER:
            self.label = "chrF" + "+" * word_order
        super().__init__(**common)

    @classmethod
    def from_options(cls, options: ScoreOptions, *, progress: bool = False) -> CHRF:
        return cls(options.chrf_word_order, **sacrebleu_settings(options))

    def _make(self, variant: None, *, sentence: bool) -> Any:
        from sacrebleu.metrics import CHRF as SacreCHRF  # lazy: sacrebleu

        return SacreCHRF(word_order=self.word_order)


class TER(SacrebleuMetric):
    """Translation edit rate (lower is better): sacrebleu's TER, its defaults. A segment's statistics are
    its edits and its (average) reference length, fractional with several references: float64 rows."""

    name = "ter"
    label = "TER"
    higher_is_better = False
    stats_dtype = np.float64

    @classmethod
    def from_options(cls, options: ScoreOptions, *, progress: bool = False) -> TER:
        return cls(**sacrebleu_settings(options))

    def _make(self, variant: None, *, sentence: bool) -> Any:
        from sacrebleu.metrics import TER as SacreTER  # lazy: sacrebleu

        return SacreTER()

    def corpus_score(self, stats: np.ndarray) -> float:
        # summed in order, as sacrebleu's sum_of_lists does (the lengths are fractional: order matters)
        return self._scorer._compute_score_from_stats([sum(column.tolist()) for column in stats.T]).score

    def sentence_score(self, row: np.ndarray) -> float:
        return self._sentence_scorer._compute_score_from_stats(list(row)).score
