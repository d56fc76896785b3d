# A missing source names the pattern; one excluded by .dockerignore says so; several
# sources need a directory destination. Each fails with the Dockerfile line and a caret.
printf 'FROM busybox\nCOPY missing.txt /m\n' > Dockerfile.missing
build_fails -f Dockerfile.missing .
expect_output "Dockerfile.missing:2:1"
expect_output "missing.txt"
expect_output "2 | COPY missing.txt /m"
expect_output "  | ^^^^"
printf 'FROM busybox\nCOPY secret.txt /s\n' > Dockerfile.ignored
build_fails -f Dockerfile.ignored .
expect_output "secret.txt (it is excluded by .dockerignore)"
printf 'FROM busybox\nCOPY x.txt y.txt /notadir\n' > Dockerfile.many
build_fails -f Dockerfile.many .
expect_output "the destination must be a directory and end with a /"
build -t fine .
file_is fine /ok.txt x
