# -f FILE: FILE.dockerignore next to it wins over the context's .dockerignore.
build -t di -f sub/Custom.Dockerfile .
run_is di "one.txt
sub" ls /ctx
printf 'FROM busybox\nCOPY . /ctx/\n' > Dockerfile
build -t di2 .
run_is di2 "Dockerfile
sub
two.txt" ls /ctx
