# ADD of a git repository (served here by `git daemon` on the loopback): a tag or a
# branch, a subdirectory after `:`, `.git` only with --keep-git-dir; a new commit on the
# branch misses the cache, the unchanged tag does not.
command -v git >/dev/null || fail "this case needs git"
repo="$WORK/repos/project.git"
src="$WORK/src"
mkdir -p "$src/sub" "$WORK/repos"
git -C "$src" init -q -b main
git -C "$src" config user.email test@example.invalid
git -C "$src" config user.name test
echo v1 > "$src/file.txt"; echo "in sub" > "$src/sub/inner.txt"
git -C "$src" add -A && git -C "$src" commit -q -m one && git -C "$src" tag v1
git clone -q --bare "$src" "$repo"
port="$(free_port)"
git daemon --reuseaddr --base-path="$WORK/repos" --export-all --listen=127.0.0.1 --port="$port" "$WORK/repos" >/dev/null 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null' EXIT
for _ in $(seq 100); do git ls-remote "git://127.0.0.1:$port/project.git" >/dev/null 2>&1 && break; sleep 0.1; done
url="git://127.0.0.1:$port/project.git"
build -t git1 --build-arg REPO="$url" .
file_is git1 /v1/file.txt v1
file_is git1 /v1/sub/inner.txt "in sub"
absent git1 /v1/.git
file_is git1 /sub-only/inner.txt "in sub"
absent git1 /sub-only/file.txt
run_is git1 "yes" sh -c 'test -d /with-git/.git && echo yes'
echo v2 > "$src/file.txt"
git -C "$src" commit -q -am two
git -C "$src" push -q "$repo" main
build -t git1 --build-arg REPO="$url" .
step_cached 3
step_not_cached 4
printf 'FROM busybox\nADD git://127.0.0.1:%s/missing.git /x/\n' "$port" > Dockerfile.missing
build_fails -f Dockerfile.missing .
expect_output "ADD failed"
