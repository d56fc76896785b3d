# The automatic platform ARGs have this machine's platform once a stage declares them.
build -t plat .
arch="$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
want="linux/$arch linux $arch linux/$arch"
[ "$arch" = arm64 ] && want="linux/arm64/v8 linux arm64 linux/arm64/v8"
file_is plat /platform.txt "$want"
config_is plat 'd["Architecture"]' "\"$arch\""
