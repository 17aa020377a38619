"""One table of issue 15's GPU figures from the JSON files gpu_check.sh's steps wrote into OUT_DIR
(gen-PRESET.json from translate_speed.py, train-global.json from train_throughput.py --global-batch).

    python benchmarks/gpu_summary.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = 3.0  # ×plain, issue 15 (generation and training)
TARGET_MFU = 0.6


def rows(out: Path) -> list[tuple[str, str, str, str]]:
    table = []
    for path in sorted(out.glob("gen-*.json")):
        data = json.loads(path.read_text())
        for preset, result in data["models"].items():
            base = result["rows"]["plain generate"]
            base_tps = base["new_tokens"] / base["seconds"]
            for label, row in result["rows"].items():
                if label == "plain generate" or "warmup_seconds" not in row:
                    continue
                ratio = row["new_tokens"] / row["seconds"] / base_tps
                check = result.get("checks", {}).get(label, {})
                same = f"{check.get('identical', '?')}/{result['sentences']} identical"
                ok = ratio >= TARGET and check.get("identical") == result["sentences"]
                table.append((f"generate {preset} ({data['device']})", f"{label} {ratio:.2f}x plain "
                              f"({row['new_tokens'] / row['seconds']:,.0f} vs {base_tps:,.0f} tok/s)", same,
                              "met" if ok else "MISSED"))
    path = out / "train-global.json"
    if path.is_file():
        data = json.loads(path.read_text())
        results = {r["pipeline"]: r for r in data["results"]}
        fast = results.get("ait+compile") or results.get("ait")
        if fast and "plain" in results:
            ratio = fast["real_tokens_per_s"] / results["plain"]["real_tokens_per_s"]
            mfu = fast.get("mfu") or 0.0
            table.append((f"train 7b1, global batch {data['global_batch']} ({data['device']})",
                          f"micro {fast['batch_size']} {ratio:.2f}x plain micro {results['plain']['batch_size']}",
                          f"MFU {mfu:.3f}", "met" if ratio >= TARGET and mfu >= TARGET_MFU else "MISSED"))
    return table


def main() -> int:
    out = Path(sys.argv[1])
    table = rows(out)
    if not table:
        print(f"no figures in {out}")
        return 1
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(("figure", "result", "check", "target"), widths)))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
