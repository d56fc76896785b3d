"""Write the hostile layer archives (and expectations.txt) that the layer engine must
refuse or contain. Run from anywhere: python3 make.py. Deterministic (mtime 0).

Each case is a layer tar; expectations.txt says per file either
  refuse <text the error must contain>
  contain <path that must exist inside the target afterwards>
and in every case nothing may appear outside the target directory.
"""
import gzip
import io
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUTSIDE = "/tmp/rbuild-hostile-outside"  # must never be created on the host


def info(name, kind=tarfile.REGTYPE, data=b"", link="", size=None, mode=0o644):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.mtime = 0
    t.mode = mode
    t.linkname = link
    t.size = len(data) if size is None else size
    return t, data


def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for t, data in entries:
            tar.addfile(t, io.BytesIO(data) if t.type == tarfile.REGTYPE else None)
    return buf.getvalue()


cases = {}
expect = {}

cases["dotdot.tar"] = layer([info("../escape", data=b"x")])
expect["dotdot.tar"] = "refuse climbs out"

cases["dotdot-nested.tar"] = layer([info("a/b/../../../escape", data=b"x")])
expect["dotdot-nested.tar"] = "refuse climbs out"

cases["absolute-path.tar"] = layer([info("/escape-absolute", data=b"x")])
expect["absolute-path.tar"] = "contain escape-absolute"

cases["symlink-then-write.tar"] = layer([
    info("link", tarfile.SYMTYPE, link=OUTSIDE),
    info("link/pwned", data=b"x"),
])
expect["symlink-then-write.tar"] = "contain tmp/rbuild-hostile-outside/pwned"

cases["symlink-parent-dotdot.tar"] = layer([
    info("up", tarfile.SYMTYPE, link="../../../../../../../.."),
    info("up/escape-up", data=b"x"),
])
expect["symlink-parent-dotdot.tar"] = "contain escape-up"

cases["symlink-chain.tar"] = layer([
    info("a", tarfile.SYMTYPE, link="b"),
    info("b", tarfile.SYMTYPE, link="c/.."),
    info("c", tarfile.SYMTYPE, link="/"),
    info("a/etc/chained", data=b"x"),
])
expect["symlink-chain.tar"] = "contain etc/chained"

cases["symlink-loop.tar"] = layer([
    info("l1", tarfile.SYMTYPE, link="l2"),
    info("l2", tarfile.SYMTYPE, link="l1"),
    info("l1/x", data=b"x"),
])
expect["symlink-loop.tar"] = "refuse too many levels of symbolic links"

cases["hardlink-outside.tar"] = layer([info("hl", tarfile.LNKTYPE, link="/etc/passwd")])
expect["hardlink-outside.tar"] = "refuse which the layer does not have"

cases["hardlink-dotdot.tar"] = layer([info("hl", tarfile.LNKTYPE, link="../../../etc/passwd")])
expect["hardlink-dotdot.tar"] = "refuse climbs out"

cases["hardlink-through-symlink.tar"] = layer([
    info("hostetc", tarfile.SYMTYPE, link="/etc"),
    info("hl", tarfile.LNKTYPE, link="hostetc/passwd"),
])
expect["hardlink-through-symlink.tar"] = "refuse which the layer does not have"

cases["whiteout-dotdot.tar"] = layer([info("dir/.wh...", data=b"")])
expect["whiteout-dotdot.tar"] = "refuse a whiteout must name a file"

cases["whiteout-through-symlink.tar"] = layer([
    info("host", tarfile.SYMTYPE, link="/"),
    info("host/tmp/.wh.rbuild-hostile-victim", data=b""),
])
expect["whiteout-through-symlink.tar"] = "contain host"

noise = bytes((i * 2654435761 >> 13) & 0xFF for i in range(100000))  # barely compressible
whole = gzip.compress(layer([info("big", data=noise)]), mtime=0)
cases["truncated.tar.gz"] = whole[: len(whole) // 2]
expect["truncated.tar.gz"] = "refuse incomplete deflate stream"

huge = layer([info("huge", data=b"z" * 1024)])
# Claim nearly 8 GiB in the header, then stop: the reader must fail, not allocate or hang.
t, _ = info("huge", data=b"", size=(8 << 30) - 1)
header = t.tobuf(format=tarfile.GNU_FORMAT)
cases["huge-declared-size.tar"] = header + b"z" * 4096
expect["huge-declared-size.tar"] = "refuse huge"

cases["symlink-replaced-by-dir.tar"] = layer([
    info("d", tarfile.SYMTYPE, link=OUTSIDE),
    info("d", tarfile.DIRTYPE, mode=0o755),
    info("d/inside", data=b"x"),
])
expect["symlink-replaced-by-dir.tar"] = "contain d/inside"

cases["symlink-self-loop.tar"] = layer([
    info("etc", tarfile.SYMTYPE, link="/etc"),
    info("etc/passwd", data=b"x"),
])
expect["symlink-self-loop.tar"] = "refuse too many levels of symbolic links"

# An image archive (OCI layout) whose layer blob does not hash to the name it is stored
# under: `rbuild load` must refuse it (the layer tests skip it: it is not a layer).
def oci_archive_with_wrong_digest():
    import hashlib
    import json

    def digest(b):
        return "sha256:" + hashlib.sha256(b).hexdigest()

    good = layer([info("hello", data=b"hello")])
    claimed = digest(good[:-1] + b"!")  # the name of other content
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [claimed]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": claimed, "size": len(good)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": "docker.io/library/wrong:latest"}}]}).encode()
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
             ("blobs/sha256/" + digest(manifest)[7:], manifest), ("blobs/sha256/" + digest(config)[7:], config),
             ("blobs/sha256/" + claimed[7:], good)]
    return layer([info(n, data=d) for n, d in files])


with open(os.path.join(HERE, "wrong-digest.oci-archive"), "wb") as f:
    f.write(oci_archive_with_wrong_digest())

for name, data in cases.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
with open(os.path.join(HERE, "expectations.txt"), "w") as f:
    for name in sorted(expect):
        f.write(f"{name} {expect[name]}\n")
print(f"wrote {len(cases)} hostile layers")
