# A COPY's key holds exactly the files it selects: content, mode and owner change it (and
# the RUN after it); a file's time and a file excluded by .dockerignore do not.
chmod 644 src/*.txt
build -t cc .
step_not_cached 2; step_ran 3
build -t cc .
step_cached 2; step_cached 3
touch -d '2001-01-01' src/file.txt
build -t cc .
step_cached 2; step_cached 3
echo "changed but ignored" > src/ignored.txt
build -t cc .
step_cached 2; step_cached 3
chown 1234:1234 src/other.txt
build -t cc .
step_not_cached 2; step_ran 3
stat_is cc /src/other.txt %u:%g 0:0
build -t cc .
step_cached 2; step_cached 3
chmod 600 src/other.txt
build -t cc .
step_not_cached 2; step_ran 3
stat_is cc /src/other.txt %a 600
echo v2 > src/file.txt
build -t cc .
step_not_cached 2; step_ran 3
file_is cc /copied.txt v2
echo v1 > src/file.txt
build -t cc .
step_cached 2; step_cached 3
echo new > src/added.txt
build -t cc .
step_not_cached 2
