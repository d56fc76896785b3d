#!/usr/bin/env python3
"""Lists the functions of the given Rust source folders longer than a limit, and exits 1
when there is one: `function-lengths.py LIMIT DIR...`. A function's length counts the
lines from its `fn` line to its closing brace. Braces in strings, chars and comments are
left out of the count so they cannot end a function early."""
import pathlib
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def code_only(line, state):
    """The line without strings, chars and comments; state carries a block comment."""
    out, i = [], 0
    while i < len(line):
        if state["block"]:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out)
            state["block"], i = False, end + 2
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"], i = True, i + 2
            continue
        if c == '"' or (c == "r" and re.match(r'r#*"', line[i:])):
            m = re.match(r'(r(#*))"', line[i:])
            if m:
                close = '"' + m.group(2)
                end = line.find(close, i + len(m.group(0)))
                i = len(line) if end < 0 else end + len(close)
                continue
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            i = j + 1
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    lines = path.read_text().splitlines()
    state = {"block": False}
    code = [code_only(l, state) for l in lines]
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m or state.get("skip"):
            continue
        depth, opened = 0, False
        for end in range(start, len(lines)):
            depth += code[end].count("{") - code[end].count("}")
            opened = opened or "{" in code[end]
            if not opened and code[end].rstrip().endswith(";"):
                break  # a declaration without a body
            if opened and depth <= 0:
                yield m.group(7), start + 1, end - start + 1
                break


def main():
    limit, dirs = int(sys.argv[1]), sys.argv[2:]
    long = []
    for d in dirs:
        for path in sorted(pathlib.Path(d).rglob("*.rs")):
            for name, line, length in functions(path):
                if length > limit:
                    long.append((length, f"{path}:{line}", name))
    for length, where, name in sorted(long, reverse=True):
        print(f"{length:5} lines  {where}  {name}")
    if long:
        print(f"{len(long)} functions over {limit} lines", file=sys.stderr)
        sys.exit(1)
    print(f"no function over {limit} lines in {' '.join(dirs)}")


main()
