"""Write random Dockerfiles for the differential test against the reference parser.

Usage: random_cases.py OUTDIR SEED COUNT. Each case joins 1 to 12 lines drawn from the
fragments below: the awkward corners of the language (continuations, heredocs, escape
directives, exec-form fallbacks, flags, byte-level quirks, Unicode white space), so that
their combinations are compared with BuildKit's parser, not only the cases we thought of.
`# check=` is left out on purpose: the reference (BuildKit v0.12.5) predates that
directive, and rbuild follows current BuildKit there.
"""
import os
import random
import sys

frags = ["FROM a", "RUN echo hi", "RUN <<EOF", "EOF", "<<-EOF", "\tEOF", "COPY <<A <<B /x", "A", "B",
 "ENV a=1 b=\"x y\"", "ENV k v", "LABEL x=y", "ARG q=\"1 2\" r", "ONBUILD RUN <<EOF", "CMD [\"a\", \"b\"]",
 "CMD [\"a\" junk", "HEALTHCHECK --interval=5s CMD [\"x\"]", "# comment", "", "   ", "\\", "RUN a \\",
 "  b \\", "# escape=`", "# syntax=x", "RUN x `", "COPY --from=\"a b\" c d", "--x=1", "RUN --mount=type=cache,target=/x y",
 "EXPOSE 1  2", "VOLUME [\"/a\"]", "SHELL [\"sh\"]", "USER a b", "onbuild copy a b", "RUN 3<<X cat", "X",
 "RUN echo '<<EOF'", "ENV a\\ b=c", "ENV \"a=b\" c='d e'", "LABEL a=\"unterminated", "RUN [\"a\", 1]",
 "WORKDIR  /x  ", "RUN \\\\", "\t\tRUN indented", "RUN a\\\\\\", "ENV x=y\\", "ADD [\"a\", \"b\"] junk",
 "FROM a\\ b", "é ü", "RUN é\\", "COPY --chown=ü a b", "RUN <<'Q' <<\"R\"", "Q", "R", "ONBUILD", "ENV",
 "LABEL", "ARG", "HEALTHCHECK NONE", "HEALTHCHECK", "CMD", "RUN ${X:-<<EOF}", "RUN <<E$V", "E$V", "RUN <<\\EOF", "\\EOF",
 "RUN <<EOF\r", "EOF\r", "MAINTAINER x", "FOO bar", "RUN --a \"--b c\" d", "RUN -- x", "COPY -- --a b",
 "\ufeffFROM bom", "FROM\u00a0x", "RUN\u00a0x y", "ENV a=\u00a0b", "LABEL k=v\u2028w", "COPY --x=\u00e0\u00a0 y z",
 "HEALTHCHECK CMD\u00e0 x", "ENV a=b\\", "ARG a\\", "RUN echo \"\\", "  # escape=\\", "#escape=`", "# ESCAPE = ` ",
 "# syntax = a", "#", "#!shebang", "RUN `", "RUN a ` ", "ENV a=`\"b c`\" d=e", "COPY --from=a`b c d",
 "\x0bRUN vt", "RUN\x0cff", "EXPOSE 1\x0b2", "RUN [\"a\",\t\"b\"]", "RUN [\"\\u00e9\"]", "RUN [\"a\"]]",
 "CMD [1e999]", "CMD [\"x\", 1e999]", "CMD [\"\\ud800\"]", "CMD [ ]", "CMD [", "VOLUME []", "SHELL []",
 "ONBUILD ONBUILD RUN x", "ONBUILD FROM x", "ONBUILD --a RUN <<EOF", "ADD <<-'E' /x", "E", "\tE", "RUN 0<<A 1<<-B",
 "RUN <<EOF && <<EOT", "EOT", "RUN <<\"EOF\"", "RUN <<E'O'F", "EOF   ", "RUN cat <<EOF | sh", "COPY <<\"a b\" /x", "a b"]


def main(outdir, seed, count):
    rng = random.Random(seed)
    os.makedirs(outdir, exist_ok=True)
    for i in range(count):
        lines = [rng.choice(frags) for _ in range(rng.randint(1, 12))]
        text = "\n".join(lines) + rng.choice(["", "\n"])
        with open(os.path.join(outdir, f"case{seed}-{i:04}.Dockerfile"), "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
