# .dockerignore with Docker's semantics: anchored patterns, **, exceptions in order,
# excluded directories with re-included files; the Dockerfile itself can be excluded
# and still builds.
build -t ign .
file_is ign /list.txt "./README.md
./docs/keep.md
./keep.txt
./src/main.c"
