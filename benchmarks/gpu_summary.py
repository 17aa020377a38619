"""One table of the GPU figures (issues 15 and 25) from the JSON files gpu_check.sh's steps wrote into OUT_DIR:
gen-PRESET.json and comet-*.json from translate_speed.py, train-global.json from train_throughput.py
--global-batch, fp16-resume.json and experiment.json from gpu_check.sh's own steps.

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
                n = result["sentences"]
                same = f"{check.get('identical', '?')}/{n} identical"
                if "generate_self_agreement" in check:
                    same += f" (generate vs itself {check['generate_self_agreement']}/{n})"
                agrees = check.get("identical") == n or check.get("identical", -1) >= check.get(
                    "generate_self_agreement", n + 1)
                ok = ratio >= TARGET and agrees
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
    for path in sorted(out.glob("comet-*.json")):
        data = json.loads(path.read_text())
        comet = data.get("comet")
        if not comet:
            continue
        ait_rate = comet["segments"] / comet["seconds"]
        result = f"ait {ait_rate:,.1f} segments/s (batch {comet['batch_size']})"
        check = "comet predict not run here"
        if "comet_predict_seconds" in comet:
            their_rate = comet["segments"] / comet["comet_predict_seconds"]
            result += f", comet predict {their_rate:,.1f} (batch 16): {ait_rate / their_rate:.2f}x"
            check = f"max |diff| x100 {comet['max_abs_diff_x100']:.1e}"
        table.append((f"COMET {comet['segments']} segments, transformers {data.get('transformers', '?')} "
                      f"({data['device']})", result, check, "-"))
    path = out / "fp16-resume.json"
    if path.is_file():
        data = json.loads(path.read_text())
        table.append(("train fp16, killed and --resume'd", f"{data['steps']} steps; adapter max |diff| "
                      f"{data['max_abs_diff']:.1e}", f"losses identical: {data['losses_identical']}",
                      "met" if data["losses_identical"] else "CHECK"))
    path = out / "experiment.json"
    if path.is_file():
        steps = json.loads(path.read_text())["steps"]
        slowest = ", ".join(f"{s['step']} {s['seconds']:.0f} s" for s in steps[:3])
        table.append(("experiment run (demo config)", f"{sum(s['seconds'] for s in steps):,.0f} s over "
                      f"{len(steps)} steps", f"slowest: {slowest}", "-"))
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
