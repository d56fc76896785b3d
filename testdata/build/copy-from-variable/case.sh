# COPY --from may name its stage through the stage's own ARGs
# and ENVs (BuildKit refuses that); the stage it names is built first, and a stage
# named by no one is skipped.
build -t fv .
file_is fv /from-env.txt "built by a"
file_is fv /from-arg.txt "built by b"
build -t fv2 --build-arg VARIANT=b --build-arg PICK=builder-a .
file_is fv2 /from-env.txt "built by b"
file_is fv2 /from-arg.txt "built by a"
printf 'FROM busybox AS only\nRUN echo only > /o\nFROM busybox AS unused\nRUN exit 1\nFROM busybox\nARG S=only\nCOPY --from=$S /o /o\n' > Dockerfile.skip
build -t fv3 -f Dockerfile.skip .
file_is fv3 /o only
