# The instruction's text is in the key: changing a RUN re-runs it and what follows, not
# what comes before; a LABEL (which cannot change a file) does not invalidate the RUNs.
build -t ci .
step_ran 3; step_ran 4
build -t ci .
step_cached 3; step_cached 4
sed -i 's/echo b/echo B/' Dockerfile
build -t ci .
step_cached 3; step_ran 4
file_is ci /b.txt B
sed -i 's/note=one/note=two/' Dockerfile
build -t ci .
step_cached 3; step_cached 4
sed -i 's/echo a >/echo  a >/' Dockerfile
build -t ci .
step_ran 3; step_ran 4
