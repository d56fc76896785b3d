"""Prints a benchmark's medians and the ratios rbuild / peer, one row per tool and scenario.

Usage: ratios.py RESULTS PHASE... where each line of RESULTS is `tool scenario median...`
(one median per PHASE, in seconds). Shared by the build benchmarks in this folder.
"""
import sys


def main():
    path, phases = sys.argv[1], sys.argv[2:]
    rows = {}
    for line in open(path):
        p = line.split()
        if len(p) == 2 + len(phases):
            rows[(p[0], p[1])] = [float(x) for x in p[2:]]
    header = f"{'tool':9} {'scenario':8} " + " ".join(f"{p:>8}" for p in phases)
    print(header + "   ratios " + " / ".join(phases))
    order = sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0] != "rbuild", kv[0][0]))
    for (tool, scen), v in order:
        line = f"{tool:9} {scen:8} " + " ".join(f"{x:8.3f}" for x in v)
        if tool != "rbuild" and ("rbuild", scen) in rows:
            r = rows[("rbuild", scen)]
            line += "   " + " / ".join(f"{a / b:.2f}" for a, b in zip(r, v))
        print(line)


main()
