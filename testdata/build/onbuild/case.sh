# ONBUILD triggers are stored in the config, then run first in a build FROM that image,
# and are not inherited further.
echo "context of the child" > trigger.txt
build -t parent .
config_is parent 'd["Config"]["OnBuild"]' '["COPY trigger.txt /from-trigger.txt", "RUN echo \"trigger ran\" > /trigger-ran.txt"]'
absent parent /trigger-ran.txt
printf 'FROM parent\nRUN echo child > /child.txt\n' > Dockerfile.child
build -t child -f Dockerfile.child .
expect_output "# Executing 2 build triggers"
file_is child /from-trigger.txt "context of the child"
file_is child /trigger-ran.txt "trigger ran"
file_is child /child.txt child
config_is child 'd["Config"].get("OnBuild")' 'null'
