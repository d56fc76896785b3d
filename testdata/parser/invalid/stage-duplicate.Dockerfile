FROM busybox AS base
FROM alpine AS base
