# COPY --from a stage is keyed on that stage's result: a change there re-runs the COPY
# and what follows.
build -t cf .
build -t cf .
step_cached 6; step_cached 7
build -t cf --build-arg CONTENT=two .
step_not_cached 6; step_ran 7
file_is cf /seen.txt two
