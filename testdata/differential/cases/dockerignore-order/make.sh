mkdir -p docs/api
echo 1 > docs/a.md; echo 2 > docs/api/b.md; echo 3 > docs/keep.txt; echo 4 > README.md
printf '# a comment\n*.md\n!README.md\ndocs\n!docs/keep.txt\n  spaced.txt  \n/./docs/api\n' > .dockerignore
echo sp > spaced.txt
