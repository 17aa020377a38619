"""Peak memory and time of `ait align` at corpus scale, and the extrapolation to the paper's 4.5M pairs.

    .venv/bin/python benchmarks/align_scale.py                          # 250k and 1M pairs
    .venv/bin/python benchmarks/align_scale.py --pairs 4500000          # the real thing (about 1 h here)

Data: the deen corpus (10,099 real sentence pairs, about 560 cells a pair like the issue's estimate)
copied until N pairs; in copy k each word that occurs at most twice in the base corpus is renamed
`word~k` with probability k^-1/2, so the vocabulary and the word-pair table keep growing like a real
corpus's (Heaps' law with beta = 1/2: new rare words, shared frequent ones).
Each size runs the default pipeline (both directions, grow-diag-final-and, JSONL with span pairs; the
output goes to /dev/null) in its own process: wall time, CPU time, peak RSS from wait4. Peak RSS
includes the resident pages of the memory-mapped cell-id file (4 bytes a cell), so it is an upper
bound of what the process needs; the peak anonymous RSS (sampled from /proc, Linux only) is the part
the OS cannot page back to that file. With two sizes or more, a least-squares line through (cells, peak
RSS) extrapolates to 4.5M pairs; the acceptance bound is 24 GB.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

from _align_common import GOLD, ROOT, machine, read_lines, run_measured

PAPER_PAIRS = 4_500_000
LIMIT_GB = 24.0


def generate(path: Path, n_pairs: int) -> tuple[int, int]:
    """Write n_pairs `src ||| tgt` lines; return (cells, tokens).

    Copy k of the base corpus renames each rare word (at most 2 occurrences in the base) to `word~k`
    with probability k^-1/2 (decided by a hash, so reproducible): the vocabulary grows like 2R·sqrt(k)
    (Heaps' law with beta = 1/2, R rare types), frequent words and their pairs stay shared."""
    src = read_lines(GOLD / "deen" / "test.src") + read_lines(GOLD / "deen" / "train.src")
    tgt = read_lines(GOLD / "deen" / "test.tgt") + read_lines(GOLD / "deen" / "train.tgt")
    src = [[w for w in s.lower().split(" ") if w] for s in src]
    tgt = [[w for w in t.lower().split(" ") if w] for t in tgt]
    freq = Counter(w for s in src for w in s) + Counter(w for t in tgt for w in t)
    rare = sorted(w for w, c in freq.items() if c <= 2)
    cells = tokens = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 22) as out:
        k = written = 0
        while written < n_pairs:
            p = k ** -0.5 if k else 0.0
            renamed = {w: f"{w}~{k}" for w in rare if zlib.crc32(f"{w}|{k}".encode()) < p * 2**32}
            get = renamed.get
            for s, t in zip(src, tgt):
                if written == n_pairs:
                    break
                out.write(" ".join([get(w, w) for w in s]) + " ||| " + " ".join([get(w, w) for w in t]) + "\n")
                cells += len(s) * len(t)
                tokens += len(s) + len(t)
                written += 1
            k += 1
    return cells, tokens


def run(path: Path, work: Path, threads: int) -> dict:
    ait = ROOT / ".venv" / "bin" / "ait"
    cmd = [str(ait), "align", str(path), "--src-lang", "de", "--tgt-lang", "en", "--lowercase",
           "--threads", str(threads), "--work-dir", str(work), "-o", "-"]
    anon = [0]

    def start_sampler(pid: int) -> None:
        threading.Thread(target=_sample_anon, args=(pid, anon), daemon=True).start()

    wall, usage, stderr = run_measured(cmd, start_sampler)
    summary = re.search(r"aligned .*", stderr)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_gb": usage.ru_maxrss / 2**20,
            "anon_gb": anon[0] / 2**20, "summary": summary.group(0) if summary else stderr.strip()[-300:]}


def _sample_anon(pid: int, peak: list) -> None:
    """Peak anonymous RSS (kB), sampled every 0.5 s: the part that cannot be paged back to a file."""
    path = f"/proc/{pid}/status"
    while True:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="250000,1000000", help="comma-separated corpus sizes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tmp", default=None, help="where the corpus and temporary files go (needs ~5 GB per 1M)")
    args = ap.parse_args()
    print(machine())
    rows = []
    with tempfile.TemporaryDirectory(prefix="ait-align-scale.", dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        for n in [int(x) for x in args.pairs.split(",")]:
            corpus = tmp / f"corpus-{n}.fa"
            cells, tokens = generate(corpus, n)
            r = run(corpus, tmp, args.threads)
            corpus.unlink()
            rows.append((n, cells, tokens, r))
            print(f"{n:>9,} pairs  {cells / 1e6:8.1f}M cells  {tokens / 1e6:6.1f}M tokens  wall {r['wall']:7.1f}s  "
                  f"CPU {r['cpu']:7.1f}s  {n / r['wall']:7,.0f} sent/s  peak RSS {r['rss_gb']:6.2f} GB "
                  f"(anonymous {r['anon_gb']:.2f} GB)", flush=True)
            print(f"          {r['summary']}", flush=True)
    print(machine())
    if len(rows) >= 2:
        xs = [c for _, c, _, _ in rows]
        ys = [r["rss_gb"] for *_, r in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        base = my - slope * mx
        n_big, c_big = rows[-1][0], rows[-1][1]
        cells_paper = c_big * PAPER_PAIRS / n_big
        gb = base + slope * cells_paper
        print(f"linear fit: peak RSS = {base:.2f} GB + {slope * 1e9:.2f} GB per 1G cells; at {PAPER_PAIRS:,} "
              f"pairs ({cells_paper / 1e9:.2f}G cells): {gb:.1f} GB -> "
              f"{'within' if gb <= LIMIT_GB else 'OVER'} {LIMIT_GB:.0f} GB")
    for n, _, _, r in rows:
        if n >= PAPER_PAIRS:
            print(f"measured at {n:,} pairs: {r['rss_gb']:.1f} GB -> {'within' if r['rss_gb'] <= LIMIT_GB else 'OVER'} "
                  f"{LIMIT_GB:.0f} GB")


if __name__ == "__main__":
    main()
