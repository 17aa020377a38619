"""Benchmark `ait build` and `ait mix` against naive baselines: records/s and peak RSS, side by side.

    python benchmarks/build_mix.py                      # 1M aligned records, the issue's setting
    python benchmarks/build_mix.py --records 100000     # quicker
    python benchmarks/build_mix.py --mix-records 10000000   # the 10M-record mix memory check

Every case runs in its own process, so its peak RSS (from wait4) is its own. Data is generated into a
temporary directory (`--tmp`), deleted at the end unless --keep. Targets (issue 2): build --objective mt
>= 100k records/s; mix of 10M records < 2 GB RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- data
def generate_aligned(path: Path, n: int, seed: int = 0) -> None:
    """`n` aligned en–kk records shaped like OPUS-100 ones: 5–25 tokens a side, a link a token, 3 pairs."""
    rng = random.Random(seed)
    en = [f"word{i}" for i in range(20000)]
    kk = [f"сөз{i}" for i in range(20000)]
    with open(path, "wb", buffering=1 << 20) as out:
        for i in range(n):
            s = [rng.choice(en) for _ in range(rng.randint(5, 25))]
            t = [rng.choice(kk) for _ in range(rng.randint(5, 25))]
            links = sorted({(k, min(len(t) - 1, k * len(t) // len(s))) for k in range(len(s))})
            pairs = [{"src": s[a], "tgt": t[b], "src_span": [a, a + 1], "tgt_span": [b, b + 1],
                      "score": round(rng.random(), 3)} for a, b in rng.sample(links, min(3, len(links)))]
            rec = {"id": f"opus.{i}", "src_lang": "en", "tgt_lang": "kk", "src": " ".join(s), "tgt": " ".join(t),
                   "src_tokens": s, "tgt_tokens": t, "links": [list(x) for x in links], "pairs": pairs}
            out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))


def generate_instructions(path: Path, n: int, languages: int = 24, seed: int = 1) -> None:
    """`n` instruction records (~250 bytes each) over `languages` languages, both directions."""
    from aligninstruct_cli.languages import PAPER_UNSEEN_24

    rng = random.Random(seed)
    langs = list(PAPER_UNSEEN_24[:languages])
    with open(path, "wb", buffering=1 << 20) as out:
        for i in range(n):
            lang = langs[i % len(langs)]
            src, tgt = ("en", lang) if i % 2 == 0 else (lang, "en")
            sid = f"{lang}.{i // 2}"
            rec = {"id": f"{sid}:mt:{src}-{tgt}:0", "objective": "mt", "src_lang": src, "tgt_lang": tgt,
                   "input": f"Translate from X to Y.\nX: {' '.join('w%d' % rng.randrange(9999) for _ in range(15))}\nY:",
                   "output": " ".join("v%d" % rng.randrange(9999) for _ in range(15)), "source_id": sid}
            out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))


# ----------------------------------------------------------------------------------------------- cases
def case_lib_build(inp: str, out: str, objective: str) -> None:
    from aligninstruct_cli.instructions.objectives import INPUT_KIND, build_instructions
    from aligninstruct_cli.io import RecordWriter, read_records

    with RecordWriter(out) as writer:
        writer.write_many(build_instructions(read_records(inp, INPUT_KIND[objective]), objective))


def case_naive_build(inp: str, out: str, objective: str) -> None:
    """The baseline: json + dicts + str.format, the obvious loop."""
    import json

    names = {"en": "English", "kk": "Kazakh"}
    template = "Translate from {s} to {t}.\n{s}: {x}\n{t}:"
    with open(inp, encoding="utf-8") as fin, open(out, "w", encoding="utf-8") as fout:
        for line in fin:
            rec = json.loads(line)
            for s, t, x, y in ((rec["src_lang"], rec["tgt_lang"], rec["src"], rec["tgt"]),
                               (rec["tgt_lang"], rec["src_lang"], rec["tgt"], rec["src"])):
                fout.write(json.dumps({"id": f"{rec['id']}:mt:{s}-{t}:0", "objective": "mt", "src_lang": s,
                                       "tgt_lang": t, "input": template.format(s=names[s], t=names[t], x=x),
                                       "output": y, "source_id": rec["id"]}, ensure_ascii=False) + "\n")


def case_naive_mix(inputs: list[str], out: str) -> None:
    """The baseline: read every line into memory, shuffle, write."""
    lines = []
    for path in inputs:
        with open(path, "rb") as fh:
            lines.extend(fh)
    random.Random(0).shuffle(lines)
    with open(out, "wb") as fh:
        fh.writelines(lines)


def run_case(args: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one case in a fresh process (interpreter start and
    imports included)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def self_case(*args: str) -> list[str]:
    return [sys.executable, __file__, "--case", *args]


def ait(*args: str) -> list[str]:
    return [sys.executable, "-m", "aligninstruct_cli", "-q", *args]


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))


# ----------------------------------------------------------------------------------------------- main
def build_and_mix(work: Path, args: argparse.Namespace, measure) -> None:
    """The build cases on `args.records` generated aligned records, then a mix of their outputs."""
    aligned = work / "aligned.jsonl"
    print(f"generating {args.records:,} aligned records in {work} ...", flush=True)
    t = time.perf_counter()
    generate_aligned(aligned, args.records)
    print(f"  {aligned.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - t:.0f} s", flush=True)
    n = args.records
    mt = work / "mt.jsonl"
    print("build --objective mt (input records/s; each gives 2 output records)")
    measure("naive json loop (baseline)", n, self_case("naive-build", str(aligned), str(work / "naive.jsonl")))
    measure("library build_instructions", n, self_case("lib-build", str(aligned), str(mt), "mt"))
    measure("CLI ait build --objective mt", n, ait("build", str(aligned), "--objective", "mt", "-o", str(mt)))
    parallel = work / "parallel.jsonl"
    with open(aligned, "rb") as fin, open(parallel, "wb") as fout:
        for line in fin:
            rec = orjson.loads(line)
            fout.write(orjson.dumps({k: rec[k] for k in ("id", "src_lang", "tgt_lang", "src", "tgt")},
                                    option=orjson.OPT_APPEND_NEWLINE))
    print(f"build --objective mt from parallel records ({parallel.stat().st_size / 1e6:,.0f} MB: no tokens, "
          "links or pairs to parse)")
    measure("naive json loop (baseline)", n, self_case("naive-build", str(parallel), str(work / "naive.jsonl")))
    measure("CLI ait build --objective mt", n, ait("build", str(parallel), "--objective", "mt",
                                                   "-o", str(work / "mt.parallel.jsonl")))

    small = work / "aligned.small.jsonl"
    m = min(args.other_records, n)
    with open(aligned, "rb") as fin, open(small, "wb") as fout:
        for _ in range(m):
            fout.write(fin.readline())
    print(f"other objectives (CLI, {m:,} input records)")
    outputs = {}
    for objective in ("align", "hint", "revise", "mono-half", "mono-full"):
        outputs[objective] = work / f"{objective}.jsonl"
        measure(f"CLI ait build --objective {objective}", m,
                ait("build", str(small), "--objective", objective, "-o", str(outputs[objective])))

    n_mix = count_lines(mt) + count_lines(outputs["align"])
    print(f"mix mt + align ({n_mix:,} instruction records)")
    measure("naive: read all, shuffle, write (baseline)", n_mix,
            self_case("naive-mix", str(work / "naive-mix.jsonl"), str(mt), str(outputs["align"])))
    measure("ait mix (interleave)", n_mix, ait("mix", str(mt), str(outputs["align"]), "-o", str(work / "mix.jsonl")))
    measure("ait mix --max-per-lang 100000 --weight align=0.5", n_mix,
            ait("mix", str(mt), str(outputs["align"]), "--max-per-lang", "100000", "--weight", "align=0.5",
                "-o", str(work / "mix2.jsonl")))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="aligned records for build (default 1M; 0 skips the build cases)")
    parser.add_argument("--other-records", type=int, default=100_000,
                        help="aligned records for align/hint/revise/mono (slower objectives; default 100k)")
    parser.add_argument("--mix-records", type=int, default=0,
                        help="also mix this many generated instruction records (e.g. 10000000) for the RSS check")
    parser.add_argument("--tmp", default=None, help="directory for generated data (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:  # a child process running one measured case
        name, *rest = args.case
        if name == "lib-build":
            case_lib_build(rest[0], rest[1], rest[2])
        elif name == "naive-build":
            case_naive_build(rest[0], rest[1], "mt")
        elif name == "naive-mix":
            case_naive_mix(rest[1:], rest[0])
        return

    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="ait-bench.", dir=args.tmp))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (a busy machine slows wall time: "
          "the CPU-time rate is the steadier figure)")
    print(f"  {'case':<48} {'records':>11} {'wall s':>7} {'rec/s wall':>11} {'rec/s CPU':>10} {'peak RSS':>9}")

    def measure(label: str, n: int, cmd: list[str]) -> None:
        wall, cpu, rss = run_case(cmd)
        print(f"  {label:<48} {n:>11,} {wall:7.1f} {n / wall:>11,.0f} {n / cpu:>10,.0f} {rss:>6,.0f} MB",
              flush=True)

    try:
        if args.records:
            build_and_mix(work, args, measure)

        if args.mix_records:
            for path in work.iterdir():
                path.unlink()  # make room
            big = work / "big.jsonl"
            print(f"generating {args.mix_records:,} instruction records ...", flush=True)
            generate_instructions(big, args.mix_records)
            print(f"  {big.stat().st_size / 1e9:,.1f} GB", flush=True)
            print(f"mix of {args.mix_records:,} records (target < 2 GB RSS)")
            measure("ait mix (interleave)", args.mix_records, ait("mix", str(big), "-o", str(work / "big.mix.jsonl")))
            (work / "big.mix.jsonl").unlink(missing_ok=True)
            measure("ait mix --max-per-lang 200000", args.mix_records,
                    ait("mix", str(big), "--max-per-lang", "200000", "-o", str(work / "big.mix.jsonl")))
    finally:
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
