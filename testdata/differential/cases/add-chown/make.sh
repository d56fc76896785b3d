mkdir -p src/d && echo x > src/d/x && echo f > f
tar -C src -czf a.tar.gz d
rm -rf src
