mkdir many
for i in $(seq 1500); do echo "$i" > "many/f$i"; done
head -c 6000000 /dev/urandom > big
