FROM busybox alpine
