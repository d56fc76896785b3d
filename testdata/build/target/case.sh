# --target builds the named stage and what it needs; other stages are skipped (the broken
# one would fail the build); without --target the last stage is built.
build -t tg --target test .
file_is tg /test.txt test
file_is tg /base.txt base
expect_no_output "this stage is not needed"
expect_output "Step 4/4 : RUN echo test > /test.txt"
build_fails -t all .
expect_output "returned a non-zero code: 1"
build_fails --target nosuch .
expect_output 'target stage "nosuch" could not be found'
