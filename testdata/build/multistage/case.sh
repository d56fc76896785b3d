# COPY --from a stage by name and by index (owners kept), a stage based on another
# (inheriting its ENV), and COPY --from an image.
build -t ms .
file_is ms /by-name built
stat_is ms /by-name %u:%g 7:8
file_is ms /by-index/artifact built
file_is ms /inherited.txt yes
run_is ms ok /from-image/busybox echo ok
config_is ms '[e for e in d["Config"]["Env"] if e.startswith("FROM_BUILD")]' '[]'
