# WORKDIR creates missing directories (in a layer), relative ones join the previous one,
# variables expand; an existing directory makes an empty layer (as BuildKit's mkdir step).
build -t wd .
file_is wd /pwd.txt /a/b/c/d
stat_is wd /a/b/c/d %U:%a root:755
config_is wd 'd["Config"]["WorkingDir"]' '"/tmp"'
config_is wd '[h["created_by"] for h in d["History"] if h["created_by"].startswith("WORKDIR")]' '["WORKDIR /a/b", "WORKDIR /a/b/c", "WORKDIR /a/b/c/d", "WORKDIR /tmp"]'
config_is wd 'd["History"][-1].get("empty_layer", False)' 'false'
