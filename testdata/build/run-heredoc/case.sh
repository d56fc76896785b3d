# Heredocs in RUN: a lone heredoc is the script (by its #! line when it has one), a
# heredoc after a command is its input, <<- strips leading tabs.
build -t hd .
file_is hd /script.txt "from a heredoc script
second line"
file_is hd /shebang.txt "shebang: /dev/pipes/EOF"
file_is hd /fed.txt "fed to cat"
file_is hd /tabs.txt "tabs stripped"
