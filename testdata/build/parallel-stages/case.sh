# Independent stages run at the same time: the listener stage's RUN waits for a message
# that only the sender stage's RUN sends, so run one after the other they could not both
# succeed (the listener gives up after 30 s).
port="$(free_port)"
build -t par --allow network.host --build-arg PORT="$port" .
file_is par /received.txt "hello over the loopback"
