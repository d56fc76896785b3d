python3 - <<'P'
import io, tarfile
with tarfile.open("h.tar", "w") as t:
    data = b"payload\n"
    i = tarfile.TarInfo("target"); i.size = len(data); i.mode = 0o644
    t.addfile(i, io.BytesIO(data))
    l = tarfile.TarInfo("link"); l.type = tarfile.LNKTYPE; l.linkname = "target"; l.mode = 0o755
    t.addfile(l)
    d = tarfile.TarInfo("implied/deeper/file"); d.size = 1; d.mode = 0o600; d.uid = 7
    t.addfile(d, io.BytesIO(b"x"))
P
