FROM busybox
COPY . /ctx/
RUN ls /ctx > /list.txt
