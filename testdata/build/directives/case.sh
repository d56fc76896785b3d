# `# syntax=docker/dockerfile:1.x` is served by rbuild's own frontend without a warning
# (no network); another syntax image gets a warning and the build goes on. `# escape=`
# changes the continuation character, so a backslash is an ordinary character.
echo a > a.txt
build -t dir .
expect_no_output "syntax image"
file_is dir /joined.txt "one two"
file_is dir '/back\slash/a.txt' a
sed -i 's|docker/dockerfile:1.7|example.com/custom/frontend:2|' Dockerfile
build -t dir2 .
expect_output "[Warning] the syntax image example.com/custom/frontend:2 is not used"
file_is dir2 /joined.txt "one two"
