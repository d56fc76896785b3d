# The predefined proxy ARGs reach RUN without an ARG, stay out of the history and the
# image's environment, and do not count as unused.
build -t px --build-arg HTTP_PROXY=http://proxy.invalid:3128 --build-arg no_proxy=localhost .
file_is px /proxy.txt "proxy=http://proxy.invalid:3128 no=localhost"
config_is px 'any("proxy.invalid" in h.get("created_by", "") for h in d["History"])' 'false'
config_is px 'any("PROXY" in e.upper() for e in d["Config"]["Env"])' 'false'
expect_no_output "were not consumed"
