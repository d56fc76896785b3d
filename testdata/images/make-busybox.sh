#!/usr/bin/env bash
# Makes a one-layer busybox base image with independent tools (umoci, skopeo), from
# Debian's busybox-static, and writes it three ways into OUTDIR:
#   OUTDIR/layout/            an OCI image layout (tag "latest"), made by umoci
#   OUTDIR/busybox-oci.tar    an OCI archive named busybox:latest, made by skopeo
#   OUTDIR/busybox-docker.tar a `docker save` archive of busybox:latest, made by skopeo
# Usage: make-busybox.sh OUTDIR. Needs: busybox-static, umoci, skopeo.
set -euo pipefail
out="${1:?usage: make-busybox.sh OUTDIR}"
busybox="$(command -v busybox)"
for tool in umoci skopeo; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umoci init --layout "$out/layout"
umoci new --image "$out/layout:latest"
umoci unpack --image "$out/layout:latest" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
ln -s busybox "$rootfs/bin/sh.link"
ln "$rootfs/etc/passwd" "$rootfs/etc/passwd.hardlink"
umoci repack --image "$out/layout:latest" --history.created_by "testdata/images/make-busybox.sh: busybox-static" "$work/bundle"
umoci config --image "$out/layout:latest" --config.cmd /bin/sh --config.env PATH=/bin \
  --history.created_by 'CMD ["/bin/sh"]'
skopeo copy --quiet "oci:$out/layout:latest" "oci-archive:$out/busybox-oci.tar:busybox:latest"
skopeo copy --quiet "oci:$out/layout:latest" "docker-archive:$out/busybox-docker.tar:busybox:latest"
echo "made $out"
