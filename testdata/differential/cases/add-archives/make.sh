mkdir -p src/dir/sub && echo one > src/dir/one && echo two > src/dir/sub/two
ln -s one src/dir/link && ln src/dir/one src/dir/hard && chmod 0751 src/dir/sub
echo conf > src/passwd-extra
tar -C src -cf a.tar --owner=12 --group=34 dir passwd-extra
gzip -kn a.tar; bzip2 -k a.tar; xz -k a.tar; zstd -q a.tar
rm -rf src
