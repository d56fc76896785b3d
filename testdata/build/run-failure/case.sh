# A failing RUN: the build stops with a non-zero exit, naming the Dockerfile line (with a
# caret), the command and its exit code, and showing the end of its output; the store
# stays usable and the next build reuses what succeeded.
build_fails -t fail .
expect_output "Dockerfile:3:1"
expect_output "returned a non-zero code: 3"
expect_output "/bin/sh -c echo \"about to fail\""
expect_output "--- the end of its output:"
expect_output "on stderr"
expect_output "3 | RUN echo"
expect_no_output "Step 4/4"
rb images >/dev/null || fail "the store does not list after a failed build"
printf 'FROM busybox\nRUN echo fine\n' > Dockerfile.ok
build -t ok -f Dockerfile.ok .
step_cached 2
absent ok /never
run_is ok ok sh -c 'test -d /bin && echo ok'
