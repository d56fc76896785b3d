# A build argument's value is in the key of every RUN that can see it.
build -t cb .
step_ran 3
build -t cb --build-arg V=default .
step_cached 3; step_cached 4
build -t cb --build-arg V=other .
step_ran 3; step_ran 4
file_is cb /v.txt other
build -t cb .
step_cached 3; step_cached 4
file_is cb /v.txt default
