# A destination through a symbolic link of the image lands where the link points (inside
# the image), and the link stays a link.
build -t sl .
file_is sl /real/dir/v.txt v
file_is sl /real/dir/w.txt v
run_is sl "/real/dir" readlink /link
