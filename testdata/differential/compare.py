#!/usr/bin/env python3
"""Compares two image archives (OCI or `docker save`, as rbuild and docker write them):
the merged file tree (type, mode, owner, size, content digest, link target, hard-link
groups), the config, the history and each layer's count and whiteouts. Times are left
out: they differ between any two builds. Prints one line per difference and exits 1 when
there is one. Usage: compare.py A.tar B.tar
With --against-noise A1 B1 A2 B2: A1 against B1, where a path of the tree may differ
only when it also differs between A1 and A2 or between B1 and B2 (two builds of one tool);
prints those paths."""
import gzip
import hashlib
import io
import json
import sys
import tarfile

CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
                 "Volumes", "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped"]


def blobs(path):
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


def image(path):
    files = blobs(path)
    blob = lambda d: files["blobs/" + d.replace(":", "/")]
    desc = json.loads(files["index.json"])["manifests"][0]
    doc = json.loads(blob(desc["digest"]))
    while "manifests" in doc:  # an index: its first image
        doc = json.loads(blob(doc["manifests"][0]["digest"]))
    config = json.loads(blob(doc["config"]["digest"]))
    layers = []
    for l in doc["layers"]:
        data = blob(l["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        layers.append(data)
    return config, layers


def tree(layers):
    merged, whiteouts = {}, []
    for data in layers:
        outs = []
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                path = "/" + m.name.lstrip("./").rstrip("/")
                parent, _, name = path.rpartition("/")
                if name == ".wh..wh..opq":
                    outs.append(path)
                    merged = {p: e for p, e in merged.items() if not p.startswith(parent + "/")}
                    continue
                if name.startswith(".wh."):
                    gone = parent + "/" + name[4:]
                    outs.append(path)
                    merged = {p: e for p, e in merged.items() if p != gone and not p.startswith(gone + "/")}
                    continue
                kind = "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "f" if m.isfile() else "o"
                digest = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16] if m.isfile() else ""
                merged[path] = (kind, oct(m.mode & 0o7777), m.uid, m.gid, m.size if m.isfile() else 0,
                                digest, m.linkname if (m.issym() or m.islnk()) else "")
        whiteouts.append(sorted(outs))
    # Hard links: compare which names share a file, not which of them came first.
    for path, e in list(merged.items()):
        if e[0] == "h":
            target = merged.get("/" + e[6].lstrip("./"))
            if target:
                merged[path] = target[:6] + ("link-group:" + e[6].lstrip("./"),)
                merged["/" + e[6].lstrip("./")] = target[:6] + ("link-group:" + e[6].lstrip("./"),)
    return merged, whiteouts


def differences(a_path, b_path):
    """The tree's differences (path, entry in a, entry in b) and the others (lines)."""
    a_config, a_layers = image(a_path)
    b_config, b_layers = image(b_path)
    tree_diffs, other = [], []
    if len(a_layers) != len(b_layers):
        other.append(f"layers: {len(a_layers)} against {len(b_layers)}")
    a_tree, a_wh = tree(a_layers)
    b_tree, b_wh = tree(b_layers)
    for path in sorted(set(a_tree) | set(b_tree)):
        if a_tree.get(path) != b_tree.get(path):
            tree_diffs.append((path, a_tree.get(path), b_tree.get(path)))
    if a_wh != b_wh:
        other.append(f"whiteouts: {a_wh} against {b_wh}")
    a_run, b_run = a_config.get("config") or {}, b_config.get("config") or {}
    for field in CONFIG_FIELDS:
        if a_run.get(field) != b_run.get(field):
            other.append(f"config {field}: {a_run.get(field)!r} against {b_run.get(field)!r}")
    for field in ["architecture", "os"]:
        if a_config.get(field) != b_config.get(field):
            other.append(f"{field}: {a_config.get(field)!r} against {b_config.get(field)!r}")
    history = lambda c: [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in c.get("history", [])]
    if history(a_config) != history(b_config):
        for i, (x, y) in enumerate(zip(history(a_config), history(b_config))):
            if x != y:
                other.append(f"history {i}: {x!r} against {y!r}")
        if len(history(a_config)) != len(history(b_config)):
            other.append(f"history: {len(history(a_config))} entries against {len(history(b_config))}")
    return tree_diffs, other


def against_noise(a1, b1, a2, b2):
    """A1 against B1, where a tree path may differ only when it differs between A1 and A2
    or between B1 and B2 too (files that change from build to build)."""
    tree_diffs, other = differences(a1, b1)
    noise_a = {p for p, _, _ in differences(a1, a2)[0]}
    noise_b = {p for p, _, _ in differences(b1, b2)[0]}
    explained = [p for p, _, _ in tree_diffs if p in noise_a or p in noise_b]
    unexplained = [(p, x, y) for p, x, y in tree_diffs if p not in noise_a and p not in noise_b]
    print(f"paths that differ between two builds of rbuild: {len(noise_a)}, of BuildKit: {len(noise_b)}")
    print(f"paths that differ between rbuild and BuildKit: {len(tree_diffs)}, "
          f"{len(explained)} of them differing between two builds of one tool too:")
    for p in explained:
        print(f"  {p}  (differs between two builds of {'rbuild' if p in noise_a else ''}"
              f"{' and ' if p in noise_a and p in noise_b else ''}{'BuildKit' if p in noise_b else ''})")
    for p, x, y in unexplained:
        print(f"DIFFERS ONLY BETWEEN THE TOOLS: {p}: {x} against {y}")
    for line in other:
        print(f"DIFFERS: {line}")
    ok = not unexplained and not other
    print("apt comparison: " + ("same tree apart from build-to-build differences" if ok else "differs"))
    sys.exit(0 if ok else 1)


def main():
    if sys.argv[1] == "--against-noise":
        against_noise(*sys.argv[2:6])
    tree_diffs, other = differences(sys.argv[1], sys.argv[2])
    for path, x, y in tree_diffs:
        print(f"tree {path}: {x} against {y}")
    for line in other:
        print(line)
    sys.exit(1 if tree_diffs or other else 0)


main()
