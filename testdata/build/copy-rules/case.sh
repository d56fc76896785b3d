# Docker's COPY rules: a file to a file name, a file into a directory (trailing /), a
# directory's content (not the directory), wildcards, several sources, relative
# destinations under WORKDIR.
build -t cp .
file_is cp /file/renamed.txt a
file_is cp /into/a.txt a
file_is cp /contents/c.txt c
file_is cp /contents/sub/d.txt d
absent cp /contents/dir
file_is cp /contents-slash/sub/d.txt d
run_is cp "a.txt
b.txt" ls /glob
run_is cp "a.txt
b.txt" ls /two
file_is cp /work/a.txt a
file_is cp /work/rel/a.txt a
stat_is cp /into %U:%G:%a root:root:755
