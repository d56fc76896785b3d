# Metadata instructions land in the image config, each with an empty-layer history entry.
build -t meta .
config_is meta 'd["Author"]' '"someone@example.com"'
config_is meta 'd["Config"]["Labels"]' '{"version": "1.0", "description": "a test image", "multi.word": "a b"}'
config_is meta 'sorted(d["Config"]["ExposedPorts"])' '["443/tcp", "53/udp", "7000/tcp", "7001/tcp", "7002/tcp", "80/tcp"]'
config_is meta 'sorted(d["Config"]["Volumes"])' '["/cache", "/data", "/logs"]'
config_is meta 'd["Config"]["User"]' '"nobody:nogroup"'
config_is meta 'd["Config"]["StopSignal"]' '"SIGINT"'
config_is meta 'd["Config"]["Entrypoint"]' '["/bin/echo", "entry"]'
config_is meta 'd["Config"]["Cmd"]' '["default", "args"]'
config_is meta 'all(h.get("empty_layer") for h in d["History"][-9:])' 'true'
config_is meta 'len(d["History"])' '11'
run_is meta "entry default args"
run_is meta "entry other" other
