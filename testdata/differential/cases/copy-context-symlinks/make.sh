echo t > target
ln -s target link-to-file
ln -s nowhere dangling
mkdir -p dir/in && echo i > dir/in/i
ln -s dir link-to-dir
ln -s ../target dir/up
ln -s /etc/passwd dir/absolute
