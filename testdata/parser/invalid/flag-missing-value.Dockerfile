FROM busybox
  RUN --network echo hi
