FROM busybox
COPY --from=4 /x /x
