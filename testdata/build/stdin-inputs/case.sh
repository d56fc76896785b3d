# `-` as the context reads a tar (plain or gzip) from standard input; `-f -` reads the
# Dockerfile from standard input with a directory context; both at once are refused.
mkdir ctx && echo "from the tar" > ctx/in-tar.txt && cp Dockerfile ctx/
tar -C ctx -cf ctx.tar . && gzip -k ctx.tar
rb build --progress plain -t tarctx - < ctx.tar > "$OUT" 2>&1 || fail "tar context"
file_is tarctx /in-tar.txt "from the tar"
rb build --progress plain -t gzctx - < ctx.tar.gz > "$OUT" 2>&1 || fail "gzip tar context"
file_is gzctx /in-tar.txt "from the tar"
printf 'FROM busybox\nCOPY case.sh /c\n' | rb build --progress plain -t stdindf -f - . > "$OUT" 2>&1 || fail "-f -"
run_is stdindf ok sh -c 'test -s /c && echo ok'
if rb build -f - - < ctx.tar > "$OUT" 2>&1; then fail "-f - with - should fail"; fi
expect_output "cannot both come from standard input"
