# Hostile sources cannot write outside the layer: a link placed by one source (dst/a, to
# a host directory) never lets a later source write on the host (the later directory
# replaces the link; any link met on the way is followed inside the layer); URL and
# heredoc names that are not plain names are refused.
victim="$(mktemp -d /tmp/rbuild-victim.XXXXXX)"
mkdir -p first second/a
ln -s "$victim" first/a
echo pwned > second/a/planted
build -t hostile .
[ ! -e "$victim/planted" ] || fail "COPY wrote through a link onto the host: $victim/planted"
rmdir "$victim"
file_is hostile /dst/a/planted pwned
printf 'FROM busybox\nADD http://127.0.0.1:9/a/.. /dst/\n' > Dockerfile.url
build_fails -f Dockerfile.url .
expect_output "does not give a usable file name"
