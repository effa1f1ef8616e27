#!/usr/bin/env python3
"""check-includes.py — fails when modules include each other in a circle.

A module is a .c/.h pair under engine/ and server/ (engine/core/ops.c and
engine/core/ops.h are the module engine/core/ops); a header X_internal.h
belongs to module X (what X's files share among themselves). Module A depends on B when
A's .c or .h includes B's header. Prints every circle (strongly connected
set of more than one module) and exits 1 if there is one; also fails when an
engine file includes a server header (the engine stands alone).
"""
import os, re, sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)
deps, bad = {}, []
for top in ("engine", "server"):
    for root, _, files in os.walk(top):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(root, f)
            mod = path[:-2].removesuffix("_internal")
            for inc in INCLUDE.findall(open(path, encoding="utf-8").read()):
                inc = inc.removesuffix("_internal")
                if inc != mod:
                    deps.setdefault(mod, set()).add(inc)
                if top == "engine" and inc.startswith("server/"):
                    bad.append(f"{path} includes {inc}.h: the engine never includes server headers")
            deps.setdefault(mod, set())

# Tarjan's strongly connected components
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(deps.get(v, ())):
        if w not in deps:
            continue
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(deps):
    if v not in index:
        visit(v)
for c in sccs:
    print("include circle: " + " <-> ".join(c))
    for a in c:
        for b in sorted(deps[a] & set(c)):
            print(f"   {a} includes {b}.h")
for b in bad:
    print(b)
print(f"check-includes: {len(deps)} modules, {len(sccs)} circle(s)")
sys.exit(1 if sccs or bad else 0)
