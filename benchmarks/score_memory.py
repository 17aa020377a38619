"""Peak memory of `ait score` (BLEU + chrF++) as the number of segments grows.

    .venv/bin/python benchmarks/score_memory.py                      # 1M short segments (issue 13's setting)
    .venv/bin/python benchmarks/score_memory.py --segments 100000    # quick look
    .venv/bin/python benchmarks/score_memory.py --words 20,35        # FLORES-length segments

Generates one hypothesis file (`--segments` records, `--words` words a side, 7 directions) in a temporary
directory, runs `ait score FILE --metrics bleu,chrf` in its own process and prints its wall time and peak
RSS (from `wait4`, the child's own), with the scores so that two versions can be compared number for
number. With `--baseline`, the same file is also scored as the baseline (paired bootstrap, 100 samples).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

AIT = str(Path(sys.executable).with_name("ait"))
LANGS = ["kk", "de", "fr", "ja", "sw", "yo", "tr", "uz"]


def make_file(path: Path, n: int, words: tuple[int, int], seed: int = 1) -> None:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    with open(path, "wb") as out:
        for i in range(n):
            tgt = " ".join(rng.choices(vocab, k=rng.randint(*words)))
            hyp = " ".join(w if rng.random() < 0.7 else rng.choice(vocab) for w in tgt.split())
            lang = LANGS[i % len(LANGS)]
            lang = "kk" if lang == "ja" else lang  # keep MeCab out of it
            out.write(orjson.dumps({"id": i, "src_lang": "en", "tgt_lang": lang, "src": tgt[::-1], "tgt": tgt,
                                    "hyp": hyp}) + b"\n")




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--words", default="3,8", help="min,max words a segment (default: short ones)")
    parser.add_argument("--baseline", action="store_true", help="also score against itself as the baseline")
    args = parser.parse_args()
    words = tuple(int(w) for w in args.words.split(","))
    with tempfile.TemporaryDirectory(prefix="ait-score-mem-") as tmp:
        hyps = Path(tmp) / "hyps.jsonl"
        make_file(hyps, args.segments, words)  # type: ignore[arg-type]
        cmd = [AIT, "-q", "score", str(hyps), "--metrics", "bleu,chrf", "--format", "json"]
        if args.baseline:
            cmd += ["--baseline", str(hyps), "--bootstrap-samples", "100"]
        # /usr/bin/time would do too; wait4 needs no extra tool
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = b"", b""
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        if status:
            sys.exit(err.decode()[-2000:])
        report = orjson.loads(out)
        size_mb = hyps.stat().st_size / 1e6
    peak_mb = usage.ru_maxrss / 1024  # kB on Linux
    print(f"segments: {args.segments:,} ({words[0]}-{words[1]} words, {size_mb:,.0f} MB of JSONL)")
    print(f"ait score --metrics bleu,chrf{' --baseline' if args.baseline else ''}: {elapsed:,.1f} s, "
          f"peak RSS {peak_mb:,.0f} MB")
    system = report["systems"][-1]
    for key, scores in sorted(system["directions"].items()):
        print(f"  {key}: BLEU {scores['bleu']['score']:.4f}  chrF++ {scores['chrf']['score']:.4f}")


if __name__ == "__main__":
    main()
