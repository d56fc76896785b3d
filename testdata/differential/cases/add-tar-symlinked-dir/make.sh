# t.tar and t2.tar hold a directory entry where the image has a link (the directory
# replaces the link); through.tar holds only files below a linked directory (followed);
# parents.tar only files below folders the image has.
mkdir -p src/link src/abs
echo in > src/link/file
echo abs > src/abs/file
tar -C src -cf t.tar link
tar -C src -cf t2.tar abs
python3 - <<'P'
import io, tarfile
with tarfile.open("through.tar", "w") as t:
    for name, data in [("link2/file", b"through\n"), ("link2/deeper/f", b"deep\n")]:
        i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644
        t.addfile(i, io.BytesIO(data))
# Entries below folders of the image that the archive does not list: the image's
# folders keep their mode (/root is 0700).
with tarfile.open("parents.tar", "w") as t:
    for name in ["root/.profile", "tmp/new/file"]:
        i = tarfile.TarInfo(name); i.size = 1; i.mode = 0o600
        t.addfile(i, io.BytesIO(b"p"))
P
rm -rf src
