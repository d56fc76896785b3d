# Global ARGs serve FROM; a stage sees a global ARG only when it declares it again; stage
# ARGs do not cross into other stages; --build-arg overrides defaults; an unused
# --build-arg is reported.
build -t args .
file_is args /args.txt "global-default local-default"
file_is args /unseen.txt "[] []"
build -t args2 --build-arg GLOBAL=g2 --build-arg LOCAL=l2 --build-arg NOBODY=x .
file_is args2 /args.txt "g2 l2"
expect_output "One or more build-args [NOBODY] were not consumed"
config_is args2 '[e for e in d["Config"]["Env"] if "GLOBAL" in e or "LOCAL" in e]' '[]'
