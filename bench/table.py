"""Summarises compare.sh results: medians per scenario and server, ratios."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
proxy_runs = defaultdict(list)
limit_runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    into = {"proxy": proxy_runs, "limits": limit_runs}.get(r.get("group"), runs)
    into[(r["scenario"], r["sessions"], r["label"])].append(r)

def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None

def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"

# The ratio of two servers in each round (each round runs both, in
# alternating order): its median and its spread over the rounds.
def per_round_ratio(mine, theirs, metric):
    if not mine or not theirs:
        return "–"
    by_round = {r.get("round"): r[metric] for r in theirs if r.get(metric)}
    per = [r[metric] / by_round[r.get("round")] for r in mine
           if r.get(metric) and by_round.get(r.get("round"))]
    if not per:
        return "–"
    m = statistics.median(per)
    return f"{m:.2f}" if len(per) == 1 else f"{m:.2f} ({min(per):.2f}–{max(per):.2f})"

rows = []
for scenario, sessions in sorted({(s, n) for s, n, _ in runs}, key=lambda k: (k[0], k[1])):
    by = {label: runs.get((scenario, sessions, label)) for label in ("ours", "node", "bare")}
    ours, node, bare = by["ours"], by["node"], by["bare"]
    if scenario == "idle":
        metric, unit = "rss_per_session_kib", "KiB/session"
    else:
        metric, unit = "msgs_per_s", "msgs/s"
    o, n, b = (med(x, metric) if x else None for x in (ours, node, bare))
    ratio = lambda mine, theirs: per_round_ratio(mine, theirs, metric)
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
        fmt(b, 2 if scenario == "idle" else 0), ratio(ours, node), ratio(ours, bare),
        fmt(med(ours, "p99_ms") if ours else None, 2), fmt(med(node, "p99_ms") if node else None, 2),
        lost(ours), lost(node), fmt(med(ours, "client_cpu_pct") if ours else None),
        " / ".join(fmt(c, 2) for c in (co, cn, cb)),
        str(len(ours or [])),
    ])

head = ["scenario", "figure", "ours", "sockjs-node", "bare actix-ws", "ours/node (min–max)", "ours/bare (min–max)",
        "p99 ms ours", "p99 ms node", "lost+errors ours (per round)", "lost+errors node", "load tool CPU % (ours)",
        "server CPU µs/msg ours / node / bare", "rounds"]
if rows:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")

# The proxy scenarios: the gateway's kind = "proxy" in front of
# upstream-echo, against the in-process echo and nginx proxying a plain
# WebSocket to the same upstream.
if proxy_runs:
    print("\nProxy scenarios:\n")
    head = ["scenario", "figure", "proxied", "in-process", "nginx", "proxied/in-process (min–max)",
            "proxied/nginx (min–max)", "p99 ms proxied / in-process / nginx", "lost+errors proxied (per round)",
            "KiB/session extra (proxied − in-process)", "rounds"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for scenario, sessions in sorted({(s, n) for s, n, _ in proxy_runs}):
        px, ip, ng = (proxy_runs.get((scenario, sessions, l)) for l in ("proxy", "inproc", "nginx"))
        idle = scenario == "idle"
        metric, unit = ("rss_per_session_kib", "KiB/session") if idle else ("msgs_per_s", "msgs/s")
        vals = [med(x, metric) if x else None for x in (px, ip, ng)]
        extra = f"{vals[0] - vals[1]:.2f}" if idle and vals[0] is not None and vals[1] is not None else "–"
        p99 = " / ".join(fmt(med(x, "p99_ms") if x else None, 2) for x in (px, ip, ng))
        lost = "–" if not px else "/".join(str(r["lost"] + r["errors"]) for r in px)
        print("| " + " | ".join([
            f"{scenario} ×{sessions}", unit, *(fmt(v, 2 if idle else 0) for v in vals),
            per_round_ratio(px, ip, metric), per_round_ratio(px, ng, metric),
            "–" if idle else p99, lost, extra, str(len(px or [])),
        ]) + " |")

# The limits scenarios: every limit on (none reached) against none, the
# same gateway otherwise.
if limit_runs:
    print("\nLimits scenarios (every limit of the echo service on, none reached):\n")
    head = ["scenario", "figure", "limits on", "limits off", "on/off (min–max)",
            "p99 ms on / off", "server CPU µs/msg on / off", "lost+errors on (per round)", "rounds"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for scenario, sessions in sorted({(s, n) for s, n, _ in limit_runs}):
        on, off = (limit_runs.get((scenario, sessions, l)) for l in ("limited", "ours"))
        def cost(x):
            per = [r["server_cpu_pct"] * 1e4 / r["msgs_per_s"] for r in x or []
                   if r.get("server_cpu_pct") and r.get("msgs_per_s")]
            return statistics.median(per) if per else None
        print("| " + " | ".join([
            f"{scenario} ×{sessions}", "msgs/s", fmt(med(on, "msgs_per_s") if on else None),
            fmt(med(off, "msgs_per_s") if off else None), per_round_ratio(on, off, "msgs_per_s"),
            " / ".join(fmt(med(x, "p99_ms") if x else None, 2) for x in (on, off)),
            " / ".join(fmt(cost(x), 2) for x in (on, off)),
            "–" if not on else "/".join(str(r["lost"] + r["errors"]) for r in on), str(len(on or [])),
        ]) + " |")

# How quiet the machine was: its busy share just before each run, when
# no server or load tool of this run was up.
bg = sorted(r["background_cpu_pct"] for group in (runs, proxy_runs, limit_runs) for rs in group.values() for r in rs
            if r.get("background_cpu_pct") is not None)
if bg:
    print(f"\nMachine busy before each run (other processes, % of all cores): "
          f"median {statistics.median(bg):.1f}, max {bg[-1]:.1f}, over {len(bg)} runs.")

# A gateway that loses or corrupts messages has no score.
bad = [(s, n, r["errors"], r["lost"]) for group in (runs, proxy_runs, limit_runs) for (s, n, label), rs in group.items()
       if label in ("ours", "proxy", "inproc", "limited") for r in rs if r["errors"] or r["lost"]]
if bad:
    print(f"\nthe gateway failed runs (scenario, sessions, errors, lost): {bad}", file=sys.stderr)
    sys.exit(1)
