echo 'not a tar' | gzip -n > data.gz
echo 'named like a tar' > plain.tar.gz
echo text > text.txt
mkdir dir && tar -cf dir/inner.tar text.txt
