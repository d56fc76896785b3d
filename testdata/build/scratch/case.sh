# FROM scratch: an empty file system and a fresh config for this platform.
echo "from scratch" > hello.txt
build -t scr .
run_is scr "from scratch"
run_is scr "/bin
/bin/busybox" /bin/busybox find /bin
config_is scr 'd["Os"]' '"linux"'
config_is scr 'len(d["RootFS"]["Layers"])' '2'
config_is scr '"ONLY=scratch" in d["Config"]["Env"]' 'true'
