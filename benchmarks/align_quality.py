"""AER of `ait align` against the C++ fast_align reference figures, side by side.

    .venv/bin/python benchmarks/align_quality.py                 # enfr, deen, roen; fast_align model
    .venv/bin/python benchmarks/align_quality.py --eflomal       # + the eflomal backend (gdfa)

Protocol (../shared/data/align-gold/README.md): train on test + train text, lowercased, whitespace
tokens; score the test part with ../shared/tools/aer.py. Acceptance (issue 5): forward, reverse and
grow-diag-final-and AER each <= the C++ figure + 0.5 (percentage points).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _align_common import AER_TOOL, GOLD, machine, read_lines

# C++ fast_align -d -o -v, 1 thread, this machine's kind (align-gold README); eflomal 2.0.0 gdfa
REFERENCE = {
    "enfr": {"forward": 25.27, "reverse": 23.36, "grow-diag-final-and": 23.81, "eflomal": 12.27},
    "deen": {"forward": 28.77, "reverse": 31.27, "grow-diag-final-and": 31.09, "eflomal": 20.27},
    "roen": {"forward": 50.53, "reverse": 49.16, "grow-diag-final-and": 48.30, "eflomal": 38.06},
}
TOLERANCE = 0.5


def corpus(pair: str) -> tuple[list[dict], int]:
    d = GOLD / pair
    test_src, test_tgt = read_lines(d / "test.src"), read_lines(d / "test.tgt")
    src = test_src + read_lines(d / "train.src")
    tgt = test_tgt + read_lines(d / "train.tgt")
    records = [{"id": k, "src_lang": "en", "tgt_lang": "fr", "src": s, "tgt": t}
               for k, (s, t) in enumerate(zip(src, tgt))]
    return records, len(test_src)


def aer(pair: str, links: list[list[tuple[int, int]]], tmp: Path, name: str) -> dict:
    pred = tmp / f"{pair}.{name}"
    pred.write_text("".join(" ".join(f"{i}-{j}" for i, j in sent) + "\n" for sent in links), encoding="utf-8")
    out = subprocess.run([sys.executable, str(AER_TOOL), str(GOLD / pair / "test.gold"), str(pred), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run(pair: str, backend: str, tmp: Path) -> tuple[dict, float]:
    from aligninstruct_cli.align.pipeline import AlignOptions, CorpusAligner
    from aligninstruct_cli.align.symmetrize import symmetrize

    records, n_test = corpus(pair)
    config = AlignOptions(lowercase=True, tokenize=("whitespace", "whitespace"), max_pairs=0,
                         backend=backend, progress=False)
    started = time.perf_counter()
    with CorpusAligner(config) as aligner:
        for r in records:
            aligner.add(r)
        aligner.fit()
        directional = [aligner.directional_links(k) for k in range(n_test)]
    elapsed = time.perf_counter() - started
    results = {}
    for name in ("forward", "reverse", "grow-diag-final-and"):
        links = [symmetrize(f, r, name) for f, r in directional]
        results[name] = aer(pair, links, tmp, f"{backend}.{name}")
    return results, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="enfr,deen,roen")
    ap.add_argument("--eflomal", action="store_true", help="also run the eflomal backend (needs the extra)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print(machine())
    print(f"{'pair':5} {'links':20} {'C++ AER':>8} {'ait AER':>8} {'delta':>7} {'P':>6} {'R':>6}  ok   (train s)")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for pair in args.pairs.split(","):
            results, elapsed = run(pair, "fast_align", tmp)
            for name, r in results.items():
                ref = REFERENCE[pair][name]
                ours = 100 * r["aer"]
                ok = ours <= ref + TOLERANCE
                failures += not ok
                print(f"{pair:5} {name:20} {ref:8.2f} {ours:8.2f} {ours - ref:+7.2f} {100 * r['precision']:6.1f} "
                      f"{100 * r['recall']:6.1f}  {'yes' if ok else 'NO '}  ({elapsed:.1f})")
            if args.eflomal:
                results, elapsed = run(pair, "eflomal", tmp)
                r = results["grow-diag-final-and"]
                ref = REFERENCE[pair]["eflomal"]
                print(f"{pair:5} {'eflomal gdfa':20} {ref:8.2f} {100 * r['aer']:8.2f} {100 * r['aer'] - ref:+7.2f} "
                      f"{100 * r['precision']:6.1f} {100 * r['recall']:6.1f}  (ref: eflomal CLI)  ({elapsed:.1f})")
    print("acceptance (each fast_align figure <= C++ + 0.5):", "PASS" if not failures else f"FAIL ({failures})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
