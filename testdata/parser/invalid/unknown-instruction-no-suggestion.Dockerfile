FROM busybox
BANANA split
