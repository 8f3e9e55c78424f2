"""Summarises compare.sh results: medians per scenario and server, ratios."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["scenario"], r["sessions"], r["label"])].append(r)

def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None

def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"

rows = []
for scenario, sessions in sorted({(s, n) for s, n, _ in runs}, key=lambda k: (k[0], k[1])):
    by = {label: runs.get((scenario, sessions, label)) for label in ("ours", "node", "bare")}
    ours, node, bare = by["ours"], by["node"], by["bare"]
    if scenario == "idle":
        metric, unit = "rss_per_session_kib", "KiB/session"
    else:
        metric, unit = "msgs_per_s", "msgs/s"
    o, n, b = (med(x, metric) if x else None for x in (ours, node, bare))
    ratio = lambda a, c: f"{a / c:.2f}" if a and c else "–"
    lost = lambda x: "–" if not x else "/".join(str(r["lost"] + r["errors"]) for r in x)
    # Server CPU per message: independent of whether the load tool was the
    # limit (microseconds of the server's one core per message). Steady
    # scenarios only: a broadcast burst is timed from send to last delivery.
    def cost(x):
        if not x or scenario in ("idle", "broadcast"):
            return None
        per = [r["server_cpu_pct"] * 1e4 / r["msgs_per_s"] for r in x
               if r.get("server_cpu_pct") and r.get("msgs_per_s")]
        return statistics.median(per) if per else None
    co, cn, cb = cost(ours), cost(node), cost(bare)
    rows.append([
        f"{scenario} ×{sessions}", unit, fmt(o, 2 if scenario == "idle" else 0), fmt(n, 2 if scenario == "idle" else 0),
        fmt(b, 2 if scenario == "idle" else 0), ratio(o, n), ratio(o, b),
        fmt(med(ours, "p99_ms") if ours else None, 2), fmt(med(node, "p99_ms") if node else None, 2),
        lost(ours), lost(node), fmt(med(ours, "client_cpu_pct") if ours else None),
        " / ".join(fmt(c, 2) for c in (co, cn, cb)),
        str(len(ours or [])),
    ])

head = ["scenario", "figure", "ours", "sockjs-node", "bare actix-ws", "ours/node", "ours/bare",
        "p99 ms ours", "p99 ms node", "lost+errors ours (per round)", "lost+errors node", "load tool CPU % (ours)",
        "server CPU µs/msg ours / node / bare", "rounds"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")

# A gateway that loses or corrupts messages has no score.
bad = [(s, n, r["errors"], r["lost"]) for (s, n, label), rs in runs.items() if label == "ours"
       for r in rs if r["errors"] or r["lost"]]
if bad:
    print(f"\nthe gateway failed runs (scenario, sessions, errors, lost): {bad}", file=sys.stderr)
    sys.exit(1)
