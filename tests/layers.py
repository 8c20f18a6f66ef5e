#!/usr/bin/env python3
"""
layers.py - `make lint` part 2: src/ depends one way, and no file circle.

src/<layer>/*.c are compiled to $(B)/src/<layer>/*.o.  From `nm` over those
objects this script finds, for every undefined symbol of an object, the
object that defines it, and fails when

  * an object uses a symbol of a layer above its own (the order is below;
    layers of the same rank, zimbra and ldap or stages and report, may not
    use each other either), or
  * objects use each other in a circle (a -> b -> ... -> a), inside a layer
    too: every file can be read, tested and replaced from the bottom up, or
  * an object outside src/state/ calls SQLite (the SQL lives in state/).

The layers, bottom up (README "Architecture"):
  core < conf < state < zimbra, ldap < xfer < stages, report < cli

Usage: tests/layers.py BUILD_DIR    (e.g. build/release; after `make`)
"""
import os
import subprocess
import sys

RANK = {"core": 0, "conf": 1, "state": 2, "zimbra": 3, "ldap": 3, "xfer": 4,
        "stages": 5, "report": 5, "cli": 6}
# objects that are not part of the layered library
SKIP = {"testhooks-live"}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = os.path.join(sys.argv[1], "src")
    defs, uses, layer = {}, {}, {}
    for lay in sorted(os.listdir(root)):
        d = os.path.join(root, lay)
        if not os.path.isdir(d):
            continue
        if lay not in RANK:
            sys.exit("layers.py: src/%s is not a known layer (add it to RANK and the README)" % lay)
        for f in sorted(os.listdir(d)):
            if not f.endswith(".o") or f[:-2] in SKIP:
                continue
            name = "%s/%s" % (lay, f[:-2])
            out = subprocess.run(["nm", os.path.join(d, f)], capture_output=True, text=True,
                                 check=True).stdout
            dset, uset = set(), set()
            for line in out.splitlines():
                p = line.split()
                if len(p) == 3 and p[1] in "TDBRC":
                    dset.add(p[2])
                elif len(p) == 2 and p[0] == "U":
                    uset.add(p[1])
            defs[name], uses[name], layer[name] = dset, uset, lay
    if not defs:
        sys.exit("layers.py: no objects under %s (build first)" % root)
    owner = {}
    for n, ds in defs.items():
        for s in ds:
            owner[s] = n
    graph = {n: {} for n in defs}
    bad = []
    for n, us in uses.items():
        for s in sorted(us):
            o = owner.get(s)
            if not o or o == n:
                continue
            graph[n].setdefault(o, s)
            a, b = layer[n], layer[o]
            if a != b and RANK[b] >= RANK[a]:
                bad.append("%s uses %s from %s: layer %s may not use layer %s"
                           % (n, s, o, a, b))
    # SQL lives in state/ only (README "Architecture"): no other object calls SQLite
    for n, us in sorted(uses.items()):
        if layer[n] != "state":
            sql = sorted(s for s in us if s.startswith("sqlite3_"))
            if sql:
                bad.append("%s calls SQLite (%s): SQL belongs in src/state/" % (n, ", ".join(sql[:3])))
    # circles: strongly connected components (Tarjan)
    index, low, on, stack, sccs = {}, {}, set(), [], []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    for comp in sccs:
        edges = ["%s -> %s (%s)" % (a, b, graph[a][b]) for a in comp for b in graph[a] if b in comp]
        bad.append("circle: " + "; ".join(edges))
    for b in bad:
        print("layers: " + b)
    if bad:
        print("layers: %d problem(s) in %d objects" % (len(bad), len(defs)))
        return 1
    print("layers: %d objects, one-way, no circle" % len(defs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
