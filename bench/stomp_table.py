"""Summarises stomp-fanout.sh results: medians per broker, mode and
subscriber count, and the gateway's ratio to RabbitMQ per round."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["sessions"], r["mode"], r["label"])].append(r)

def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None

print("| subscribers | mode | broker | deliveries/s | p50 ms | p99 ms | lost | broker CPU | vs RabbitMQ (deliveries/s, min-max) |")
print("|---|---|---|---|---|---|---|---|---|")
failed = False
for (n, mode, label) in sorted(runs, key=lambda k: (k[0], k[1] != "paced", k[2])):
    rows = runs[(n, mode, label)]
    lost = sum(r["lost"] + r["errors"] for r in rows)
    if label != "rabbitmq" and lost:
        failed = True
    ratio = "–"
    theirs = {r["round"]: r["msgs_per_s"] for r in runs.get((n, mode, "rabbitmq"), [])}
    per = [r["msgs_per_s"] / theirs[r["round"]] for r in rows if label != "rabbitmq" and theirs.get(r["round"])]
    if per:
        ratio = f"{statistics.median(per):.1f}x ({min(per):.1f}-{max(per):.1f})"
    cpu = med(rows, "server_cpu_pct")
    print(f"| {n:,} | {mode} | {label} | {med(rows, 'msgs_per_s'):,.0f} | {med(rows, 'p50_ms'):,.1f} "
          f"| {med(rows, 'p99_ms'):,.1f} | {lost} | {'–' if cpu is None else f'{cpu:.0f}%'} | {ratio} |")
busy = [r["background_cpu_pct"] for rows in runs.values() for r in rows if r.get("background_cpu_pct") is not None]
print(f"\n{len({r['round'] for rows in runs.values() for r in rows})} rounds; medians.", end="")
if busy:
    print(f" Machine busy before each run (% of all cores): median {statistics.median(busy):.1f}, max {max(busy):.1f}, over {len(busy)} runs.")
else:
    print()
sys.exit(1 if failed else 0)
