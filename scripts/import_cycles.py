#!/usr/bin/env python3
"""Import circles between a crate's modules, read from its `use` lines.

Every `.rs` file under `<crate>/src` is a module. A file imports another when
one of its paths (`crate::a::b`, `super::x`, `self::y`, a child's `x::f`, in
`use` lines or inline) resolves to that module. Declaring a child (`mod x;`)
is not an import, and neither is naming an ancestor's items (`super::Thing`):
a folder's `mod.rs` is the shared vocabulary of the modules inside it.
Test modules (`#[cfg(test)] mod …`) are left out. Prints every strongly connected component of more than one module
and exits 1 when there is one, so the test suite can run it.

    scripts/import_cycles.py planner engine catalog ...
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)::([^;]*?)\{([^}]*)\}", re.S)


def modules(src: Path) -> dict[tuple[str, ...], Path]:
    out = {}
    for f in src.rglob("*.rs"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("lib", "main", "mod"):
            parts = parts[:-1]
        out[tuple(parts)] = f
    return out


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod tests { ... }` blocks: tests may import anything."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def resolve(path, segs, mods, me):
    """The longest module named by `path` + a prefix of `segs`, if not `me`."""
    while segs and segs[0] == "super":
        path, segs = path[:-1], segs[1:]
    best = None
    for n in range(len(segs) + 1):
        cand = tuple(path + segs[:n])
        if cand in mods:
            best = cand
    if best is None or best == me or me[: len(best)] == best:
        return None  # itself, or an ancestor: a folder's shared vocabulary
    return best


def anchored(me, anchor):
    """Where `crate::`, `self::` and `super::` start inside module `me`."""
    return {"crate": [], "self": list(me), "super": list(me[:-1])}[anchor]


BARE = re.compile(r"(?<![:\w])([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def graph(src: Path):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for me, f in mods.items():
        text = re.sub(r"//[^\n]*", "", strip_tests(f.read_text()))
        targets = []
        for g in USE_GROUP.finditer(text):
            for item in g.group(3).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    segs = [x for x in (g.group(2) + item).split("::") if x]
                    targets.append(resolve(anchored(me, g.group(1)), segs, mods, me))
        for p in PATH.finditer(text):
            segs = [x for x in p.group(2).split("::") if x]
            targets.append(resolve(anchored(me, p.group(1)), segs, mods, me))
        for p in BARE.finditer(text):
            head = p.group(1)
            if head in ("crate", "super", "self") or me + (head,) not in mods:
                continue
            segs = [head] + [x for x in p.group(2).split("::") if x]
            targets.append(resolve(list(me), segs, mods, me))
        edges[me].update(t for t in targets if t)
    return mods, edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    found = False
    for crate in sys.argv[1:] or ["."]:
        mods, edges = graph(Path(crate) / "src")
        for comp in sccs(edges):
            if len(comp) > 1:
                found = True
                names = sorted("::".join(m) or "lib" for m in comp)
                print(f"{crate}: import circle through {', '.join(names)}")
    if not found:
        print("no import circles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
