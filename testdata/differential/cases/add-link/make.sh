mkdir -p src/d dir && echo x > src/d/x && echo f > f && echo g > dir/g
tar -C src -czf a.tar.gz d
rm -rf src
