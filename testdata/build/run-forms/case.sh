# RUN in exec and shell form, with continuation lines, SHELL, the environment, USER and
# the working directory.
build -t rf .
file_is rf /exec.txt exec-form
file_is rf /shell.txt "shell-form continued"
file_is rf /shell-name.txt "/bin/sh"
file_is rf /exec-env.txt "hello world"
file_is rf /tmp/uid.txt 65534
file_is rf /wd/pwd.txt /wd
config_is rf 'd["Config"]["Shell"]' '["/bin/sh", "-e", "-c"]'
