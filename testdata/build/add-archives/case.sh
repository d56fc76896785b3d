# ADD extracts local tar archives, plain or compressed with gzip, bzip2, xz or zstd,
# recognised by their content (not their names); a file that only looks like one by name
# is copied as it is.
mkdir -p src/dir && echo inside > src/dir/file.txt && ln -s dir/file.txt src/link
tar -C src -cf plain.tar .
tar -C src -czf tree.tar.gz .
tar -C src -cjf tree.tar.bz2 .
tar -C src -cJf tree.tar.xz .
tar -C src -cf - . | zstd -q -o tree.tar.zst
echo "not gzip at all" > notarchive.gz
build -t arch .
for d in plain gz bz2 xz zst; do
  file_is arch "/$d/dir/file.txt" inside
  run_is arch "dir/file.txt" readlink "/$d/link"
done
file_is arch /file/notarchive.gz "not gzip at all"
file_is arch /as-file-owner/dir/file.txt inside
