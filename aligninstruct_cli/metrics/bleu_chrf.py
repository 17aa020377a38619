"""BLEU and chrF++ through sacrebleu, exactly as `sacrebleu` computes them.

BLEU's tokenizer follows the target language (zh → zh, ja → ja-mecab, ko → ko-mecab, else 13a, sacrebleu's
own recommendation) unless `--tokenize` overrides it. chrF++ is `CHRF(word_order=2)`. Every corpus score
carries sacrebleu's signature string. Sentence-level BLEU uses `effective_order=True` (sacrebleu's
advice for single sentences), which its signature states (`eff:yes`).

For the bootstrap, `segment_stats` and `score_from_stats` expose the per-segment sufficient statistics and
the score of summed statistics: the same two steps sacrebleu's own significance module uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.languages import find_language

SACREBLEU_METRICS = ("bleu", "chrf")
# Target language → sacrebleu BLEU tokenizer; every other language gets DEFAULT_TOKENIZER.
BLEU_TOKENIZER_BY_LANG = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}
DEFAULT_TOKENIZER = "13a"
CHRF_WORD_ORDER = 2  # chrF++


@dataclass(frozen=True)
class CorpusScore:
    score: float
    signature: str


def bleu_tokenizer(tgt_lang: str, override: str | None = None) -> str:
    if override:
        from sacrebleu.metrics.bleu import BLEU

        if override not in BLEU.TOKENIZERS:
            raise AitError(f"--tokenize {override!r}: not a sacrebleu tokenizer",
                           hint=f"one of {', '.join(BLEU.TOKENIZERS)}")
        return override
    lang = find_language(tgt_lang)
    code = lang.code if lang else tgt_lang.lower()
    return BLEU_TOKENIZER_BY_LANG.get(code, DEFAULT_TOKENIZER)


def make_metric(name: str, tgt_lang: str, tokenize: str | None = None, *, sentence: bool = False):
    """A sacrebleu metric object for `name` (bleu|chrf) and the target language."""
    from sacrebleu.metrics import BLEU, CHRF

    if name == "chrf":
        return CHRF(word_order=CHRF_WORD_ORDER)
    if name != "bleu":
        raise ValueError(name)
    tok = bleu_tokenizer(tgt_lang, tokenize)
    try:
        metric = BLEU(tokenize=tok, effective_order=sentence)
        metric.corpus_score(["a"], [["a"]])  # fail here, not mid-run, when e.g. MeCab is missing
    except (ImportError, RuntimeError) as exc:
        raise AitError(f"BLEU tokenizer {tok!r} (target language {tgt_lang}) is unavailable: "
                       f"{str(exc).strip().splitlines()[0]}",
                       hint="pip install 'sacrebleu[ja]' (ja) or 'sacrebleu[ko]' (ko), or pass --tokenize") from None
    return metric


def corpus_score(metric, hyps: Sequence[str], refs: Sequence[str]) -> CorpusScore:
    result = metric.corpus_score(list(hyps), [list(refs)])
    return CorpusScore(result.score, metric.get_signature().format())


def sentence_scores(metric, hyps: Sequence[str], refs: Sequence[str]) -> tuple[list[float], str]:
    scores = [metric.sentence_score(h, [r]).score for h, r in zip(hyps, refs)]
    return scores, metric.get_signature().format()


def segment_stats(metric, hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """Per-segment sufficient statistics (one row per segment) for resampling."""
    return np.array(metric._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=np.float64)


def score_from_stats(metric, summed: np.ndarray) -> float:
    """The corpus score of summed statistics. float32, as sacrebleu's significance module passes them
    (the sums are exact integers either way; the division inside the metric is not)."""
    return metric._compute_score_from_stats(summed.astype(np.float32)).score
