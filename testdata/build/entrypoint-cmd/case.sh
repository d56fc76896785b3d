# ENTRYPOINT drops a CMD inherited from the base, keeps one set in the same stage; shell
# forms are wrapped in the shell.
build -t ec1 --target entry-resets .
config_is ec1 'd["Config"].get("Cmd")' 'null'
run_is ec1 entry
build -t ec2 --target entry-keeps .
config_is ec2 'd["Config"]["Cmd"]' '["kept"]'
run_is ec2 "entry kept"
build -t ec3 .
config_is ec3 'd["Config"]["Entrypoint"]' '["/bin/sh", "-c", "exec echo shell-entry"]'
config_is ec3 'd["Config"]["Cmd"]' '["/bin/sh", "-c", "echo shell-cmd"]'
