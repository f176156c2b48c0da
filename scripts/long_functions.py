#!/usr/bin/env python3
"""Functions longer than a screen anywhere in the workspace, tests included.

Counts the lines of every `fn` from its signature to its closing brace
(comments and blank lines included, as a reader sees them) and prints those
over the limit (80 by default), in every crate's `src/` and `tests/`.
Exits 1 when any function is over, so the test suite can run it.

    scripts/long_functions.py [--limit N] [crate ...]
"""
import argparse
import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")
CRATES = [
    "catalog", "synthetic", "statistics", "planner", "engine", "flight-server", "cli",
    "benchmarks", "tests",
]


def code_lines(text):
    """The text with strings, chars and comments blanked, line for line."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"' or text.startswith('r"', i) or text.startswith("r#", i):
            m = re.match(r'r(#*)"', text[i:])
            if m:
                end = '"' + m.group(1)
                j = text.find(end, i + len(m.group(0)))
                j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out).split("\n")


def functions(path):
    """Each function of `path`: its name, first line and length."""
    depth = 0
    stack = []  # [name, start line, depth of its body]
    for no, line in enumerate(code_lines(path.read_text()), 1):
        m = FN.match(line)
        if m:
            stack.append([m.group(1), no, None])
        for ch in line:
            if ch == "{":
                depth += 1
                if stack and stack[-1][2] is None:
                    stack[-1][2] = depth
            elif ch == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    yield name, start, no - start + 1
                depth -= 1
            elif ch == ";" and stack and stack[-1][2] is None:
                stack.pop()  # a declaration without a body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("crates", nargs="*", default=CRATES)
    args = ap.parse_args()
    over = []
    for crate in args.crates:
        files = sorted(Path(crate, "src").rglob("*.rs")) + sorted(Path(crate, "tests").rglob("*.rs"))
        for f in files:
            for name, start, length in functions(f):
                if length > args.limit:
                    over.append((length, f"{f}:{start}", name))
    for length, where, name in sorted(over, reverse=True):
        print(f"{length:4} lines  {where}  fn {name}")
    print(f"{len(over)} functions over {args.limit} lines")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
