# What the case's loopback HTTP server serves (run.sh serves ./served).
mkdir -p served/sub
echo downloaded > served/file.txt
echo inner > served/inner.txt && tar -czf served/a.tar.gz served/inner.txt && rm served/inner.txt
