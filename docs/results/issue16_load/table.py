"""Print the table of docs/BENCHMARKS.md ("Round trips under load") from the bench's JSON
files in a folder: python docs/results/issue16_load/table.py docs/results/issue16_load"""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
print("| run | executor | echo p50 / p99 µs | policy p50 / p99 µs | policy/echo p50, p99 "
      "| policy answered / dropped of 15,000 | acted-on age p50 / p99 µs | policy CPU % |")
print("|---|---|---|---|---|---|---|---|")
for f in sorted(folder.glob("*.json"), key=lambda p: (not p.name.startswith("hog"), p.name)):
    d = json.loads(f.read_text())
    e, p, g = d["echo"], d["policy"], d["policy"]["obs_age_us"]
    load = f"hog {f.stem[-1]}" if d["hog"] else f"no hog {f.stem[-1]}"
    print(f"| {load} | {d['executor']} | {e['p50_us']:,.0f} / {e['p99_us']:,.0f} | "
          f"{p['p50_us']:,.0f} / {p['p99_us']:,.0f} | {d['p50_ratio']:.2f}, "
          f"{d['p99_ratio']:.2f} | {p['answered']:,} / {p['dropped']:,} "
          f"({p['paired_chunks']}/{p['chunks']} chunks paired) | {g['p50']:,.0f} / "
          f"{g['p99']:,.0f} (from {g['from']}) | {p['cpu_percent']:.1f} |")
