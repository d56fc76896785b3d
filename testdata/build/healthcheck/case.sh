# HEALTHCHECK in shell and exec form with every option (durations in nanoseconds), and
# NONE; kept in the config although the image uses OCI media types.
build -t hc --target base .
config_is hc 'd["Config"]["Healthcheck"]' '{"Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"], "Interval": 5000000000, "Timeout": 3000000000, "StartPeriod": 60000000000, "StartInterval": 2000000000, "Retries": 4}'
config_is hc 'd["Descriptor"]["mediaType"]' '"application/vnd.oci.image.manifest.v1+json"'
build -t hc-exec --target exec .
config_is hc-exec 'd["Config"]["Healthcheck"]' '{"Test": ["CMD", "/bin/true"]}'
build -t hc-none .
config_is hc-none 'd["Config"]["Healthcheck"]' '{"Test": ["NONE"]}'
run_is hc-none ok sh -c 'test -x /bin/busybox && echo ok'
