# The environment a RUN sees is in its key.
build -t ce .
step_ran 3
build -t ce .
step_cached 3
sed -i 's/MODE=one/MODE=two/' Dockerfile
build -t ce .
step_ran 3
file_is ce /mode.txt two
