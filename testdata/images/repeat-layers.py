#!/usr/bin/env python3
"""Writes a `docker save` archive of an image with many layers: the layers of a base
image (a `docker save` archive with one image), then N more. By default these repeat one
layer, an empty tar (two empty layers have the same diff ID); with --file the repeated
layer holds one small file /repeated (the same RUN twice makes such layers); with
--distinct each of the N layers holds its own file /layers/I (all different).

Usage: repeat-layers.py BASE.tar N OUT.tar NAME[:TAG] [--file | --distinct]"""
import hashlib, io, json, sys, tarfile

def main():
    base, n, out, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with_file = "--file" in sys.argv[5:]
    src = tarfile.open(base)
    manifest = json.load(src.extractfile("manifest.json"))[0]
    config = json.load(src.extractfile(manifest["Config"]))
    distinct = "--distinct" in sys.argv[5:]

    def make_layer(path, content):
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
            if path:
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(content), 1700000000, 0o644
                t.addfile(info, io.BytesIO(content))
        data = layer.getvalue()
        return hashlib.sha256(data).hexdigest(), data

    if distinct:
        made = [make_layer(f"layers/{i}", f"{i}\n".encode()) for i in range(n)]
    else:
        made = [make_layer("repeated" if with_file else None, b"x\n")] * n
    blobs = dict(made)
    layers = list(manifest["Layers"]) + [f"{d}.tar" for d, _ in made]
    config["rootfs"]["diff_ids"] = list(config["rootfs"]["diff_ids"]) + [f"sha256:{d}" for d, _ in made]
    config["history"] = list(config.get("history", [])) + [
        {"created_by": "repeat-layers.py", "created": "2023-11-14T22:13:20Z"}
    ] * n
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    with tarfile.open(out, "w") as t:
        def add(path, payload):
            info = tarfile.TarInfo(path)
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
        for member in manifest["Layers"]:
            add(member, src.extractfile(member).read())
        for digest, data in blobs.items():
            add(f"{digest}.tar", data)
        add(config_name, config_bytes)
        tag = name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": layers}]).encode())

main()
