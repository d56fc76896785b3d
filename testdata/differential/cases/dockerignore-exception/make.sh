mkdir -p subdir/deeper
echo 1 > subdir/sub1.txt; echo 2 > subdir/sub2.txt; echo 3 > subdir/deeper/sub1.md
echo root > top.txt
printf 'subdir\n!subdir/sub1*\n' > .dockerignore
