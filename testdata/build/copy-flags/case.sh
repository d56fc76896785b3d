# COPY --parents keeps the sources' directories (from a /./ pivot when there is one);
# --exclude leaves out what its patterns (.dockerignore syntax, matched against the path
# below the source and in the context) match; --link makes a layer that does not depend
# on the layers below (the destination is not resolved through them: /linked stays a
# link to /real in the image and the layer holds a /linked directory, which hides it) and
# whose cache survives changes to them.
build -t cf .
file_is cf /app/src/a/package.json a
file_is cf /app/src/b/package.json b
absent cf /app/src/b/deep
file_is cf /pivot/b/deep/package.json d
absent cf /pivot/src
file_is cf /excluded/a/package.json a
file_is cf /excluded/a/x.txt x
absent cf /excluded/a/README.md
absent cf /excluded/b/deep
file_is cf /linked-docs/guide.md doc
file_is cf /added-heredoc.txt "added inline"
file_is cf /add-excluded/package.json a
absent cf /add-excluded/x.txt
stat_is cf /linked-docs/guide.md %u 65534
sed -i 's|ln -s /real /linked|ln -s /real /linked \&\& echo changed > /real/marker|' Dockerfile
build -t cf .
step_ran 2
step_not_cached 4
step_cached 7
step_cached 8
file_is cf /linked/guide.md doc
absent cf /real/guide.md
printf 'FROM busybox\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 Dockerfile /x\n' > Dockerfile.sum
build_fails -f Dockerfile.sum .
expect_output "ADD --checksum is for URLs"
