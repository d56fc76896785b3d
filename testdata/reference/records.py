"""Print the reference parser's records for Dockerfiles, as JSON.

The reference is the `dockerfile` package on PyPI, Python bindings over BuildKit's own Go
parser. Usage: records.py FILE...  Prints one JSON object: {path: {"records": [...]}},
{path: {"error": "..."}} or, when BuildKit's result is not valid UTF-8,
{path: {"unrepresentable": "..."}}. setup.sh installs the package into a virtual environment.
"""
import json
import sys

import dockerfile


def record(cmd):
    return {
        "cmd": cmd.cmd,
        "sub_cmd": cmd.sub_cmd,
        "json": cmd.json,
        "original": cmd.original,
        "start_line": cmd.start_line,
        "end_line": cmd.end_line,
        "flags": list(cmd.flags),
        "value": list(cmd.value),
        "heredocs": [
            {"name": h.name, "file_descriptor": h.file_descriptor, "content": h.content}
            for h in cmd.heredocs
        ],
    }


def main(paths):
    out = {}
    for path in paths:
        try:
            out[path] = {"records": [record(c) for c in dockerfile.parse_file(path)]}
        except dockerfile.GoParseError as e:
            out[path] = {"error": str(e)}
        except UnicodeDecodeError as e:
            # BuildKit cut a multi-byte character in two (it splits some text byte by
            # byte); the bindings cannot hand such a string to Python.
            out[path] = {"unrepresentable": str(e)}
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1:])
