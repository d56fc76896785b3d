# escape=\
# Escape=`
FROM busybox
