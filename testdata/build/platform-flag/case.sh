# --platform: this machine's platform builds; another is refused with a clear message
# unless a binfmt_misc handler (qemu-user) runs its programs.
# Without -f and without a Dockerfile, the Containerfile is used. Every instruction,
# ARG included, has a history entry.
arch="$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
build -t pf --platform "linux/$arch" .
file_is pf /arch.txt "$arch"
config_is pf '[h["created_by"] for h in d["History"]][-3:]' "[\"ARG TARGETARCH\", \"ARG ONE=1 TWO\", \"RUN |3 TARGETARCH=$arch ONE=1 TWO= /bin/sh -c echo \\\"\$TARGETARCH\\\" > /arch.txt # buildkit\"]"
other=s390x; [ "$arch" = s390x ] && other=amd64
build_fails -t pf2 --platform "linux/$other" .
expect_output "cannot build for linux/$other"
if ! grep -qs enabled /proc/sys/fs/binfmt_misc/*s390x* 2>/dev/null; then
  expect_output "binfmt_misc"
fi
