#!/usr/bin/env python3
"""Functions longer than a screen in the workspace's non-test code.

Counts the lines of every `fn` from its signature to its closing brace
(comments and blank lines included, as a reader sees them) and prints those
over the limit (80 by default). Test code is left out: `tests.rs` files,
`#[cfg(test)]` modules, integration tests (`*/tests/`) and the `tests`
crate, which is the test suite's own support library. Exits 1 when any
function is over, so the test suite can run it.

    scripts/long_functions.py [--limit N] [crate ...]
"""
import argparse
import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")
CRATES = ["catalog", "synthetic", "statistics", "planner", "engine", "flight-server", "cli", "benchmarks"]


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
    lines = code_lines(path.read_text())
    skip_depth = None
    depth = 0
    pending_test = False
    stack = []  # (name, start line, depth at open)
    for no, line in enumerate(lines, 1):
        if "#[cfg(test)]" in line:
            pending_test = True
        m = FN.match(line)
        if m and skip_depth is None:
            stack.append([m.group(1), no, None])
        for ch in line:
            if ch == "{":
                depth += 1
                if pending_test and skip_depth is None:
                    skip_depth = depth
                    pending_test = False
                if stack and stack[-1][2] is None:
                    stack[-1][2] = depth
            elif ch == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    if skip_depth is None:
                        yield name, start, no - start + 1
                if skip_depth == depth:
                    skip_depth = None
                depth -= 1
            elif ch == ";" and stack and stack[-1][2] is None:
                stack.pop()  # a declaration without a body
        if pending_test and line.strip() and not line.strip().startswith("#") and "{" not in line:
            if not re.match(r"\s*(pub\s+)?mod\s+\w+\s*;", line):
                pass
            pending_test = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("crates", nargs="*", default=CRATES)
    args = ap.parse_args()
    over = []
    for crate in args.crates:
        for f in sorted(Path(crate, "src").rglob("*.rs")):
            if f.name == "tests.rs" or "tests" in f.relative_to(crate).parts[1:-1]:
                continue
            for name, start, length in functions(f):
                if length > args.limit:
                    over.append((length, f"{f}:{start}", name))
    for length, where, name in sorted(over, reverse=True):
        print(f"{length:4} lines  {where}  fn {name}")
    print(f"{len(over)} non-test functions over {args.limit} lines")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
