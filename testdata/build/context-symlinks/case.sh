# Symbolic links in the context: a named source and the directories on its way are
# followed inside the context only (as if it were /), so no link reaches the host's
# files; copying a directory keeps links as links.
build -t sl .
file_is sl /x real
file_is sl /d/inside real
file_is sl /l in-sub
run_is sl /etc readlink /all/escape
run_is sl real.txt readlink /all/inside
for src in escape/hostname climb escape/passwd; do
  printf 'FROM busybox\nCOPY %s /stolen\n' "$src" > Dockerfile.escape
  build_fails -f Dockerfile.escape .
  expect_output "file not found in build context"
done
