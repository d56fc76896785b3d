# ENV values expand earlier ENVs (every pair of one ENV sees the values from before it), with
# ${x:-default} and ${x:+alt}; WORKDIR and LABEL expand too.
build -t envx .
file_is envx /env.txt "changed|two words|-x|one|fallback|set"
config_is envx 'd["Config"]["WorkingDir"]' '"/changed"'
config_is envx 'd["Config"]["Labels"]["from.env"]' '"two words"'
config_is envx '[e for e in d["Config"]["Env"] if not e.startswith("PATH=")]' '["A=changed", "B=two words", "C=-x", "D=one", "E=fallback", "F=set"]'
