# Modes are kept and files belong to root; --chown takes names (from the image's
# /etc/passwd and /etc/group) or numbers (a user alone gives the same number as group);
# --chmod takes octal or symbolic modes.
chmod 755 script.sh; chmod 600 plain.txt
build -t own .
stat_is own /keep/script.sh %u:%g:%a 0:0:755
stat_is own /keep/plain.txt %u:%g:%a 0:0:600
stat_is own /named/plain.txt %u:%g 65534:65534
stat_is own /uid-only/plain.txt %u:%g 1234:1234
stat_is own /numeric/f %u:%g 42:43
stat_is own /octal/script.sh %a 640
stat_is own /symbolic/plain.txt %a 700
stat_is own /both/f %u:%g:%a 65534:65534:750
printf 'FROM busybox\nCOPY --chown=nosuchuser plain.txt /x\n' > Dockerfile.bad
build_fails -f Dockerfile.bad .
expect_output "unable to find user nosuchuser"
