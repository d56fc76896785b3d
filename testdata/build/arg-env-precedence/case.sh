# A later ENV wins over an ARG of the same name, even with --build-arg; an ARG is in RUN's
# environment but not in the image's, and the history shows the ARGs the stage declared
# with their values at the RUN (NAME's is ENV's then, as BuildKit writes it).
build -t prec --build-arg NAME=cli .
file_is prec /name.txt from-env
file_is prec /other.txt arg-only
config_is prec '"OTHER=arg-only" in d["Config"]["Env"]' 'false'
config_is prec 'd["History"][-1]["created_by"]' '"RUN |2 NAME=from-env OTHER=arg-only /bin/sh -c echo \"$OTHER\" > /other.txt # buildkit"'
