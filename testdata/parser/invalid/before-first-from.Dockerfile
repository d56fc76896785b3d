RUN echo too early
FROM busybox
