mkdir -p x/y/tmp a/tmp tmp keep
echo h > x/y/tmp/h; echo a > a/tmp/a; echo t > tmp/t; echo k > keep/k
echo l > x/log.txt; echo m > x/y/m.log; echo Dockerfile-copy > Dockerfile.bak
printf '**/tmp\n*.bak\n**/*.log\n' > .dockerignore
