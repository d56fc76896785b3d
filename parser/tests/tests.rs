//! rbuild-parser's integration tests: BuildKit's own parser and lexer corpus, read in place
//! from `../shared/corpus/buildkit` (or `$RBUILD_CORPUS/buildkit`).

use std::fs;
use std::path::PathBuf;

use rbuild_parser::shell::{Lexer, MapEnv};
use rbuild_parser::{dump, parse_syntax};

/// The shared corpus folder. A missing corpus fails the test with the reason.
fn corpus() -> PathBuf {
    let dir = std::env::var_os("RBUILD_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    assert!(
        dir.join("buildkit").is_dir(),
        "the shared corpus is missing at {}: set RBUILD_CORPUS",
        dir.display()
    );
    dir
}

fn parser_dir() -> PathBuf {
    corpus().join("buildkit/frontend/dockerfile/parser")
}

fn read(path: &PathBuf) -> String {
    String::from_utf8(fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn buildkit_positive_cases_dump_identically() {
    let mut cases: Vec<_> = fs::read_dir(parser_dir().join("testfiles"))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 33, "expected BuildKit's 33 positive cases");
    let mut failures = Vec::new();
    for case in &cases {
        let src = read(&case.join("Dockerfile"));
        let expected = read(&case.join("result")).replace("\r\n", "\n");
        match parse_syntax(&src) {
            Ok(tree) => {
                let got = dump(&tree);
                if got != expected {
                    failures.push(format!(
                        "{}:\n--- expected\n{expected}--- got\n{got}",
                        case.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: failed to parse: {e}", case.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_negative_cases_are_rejected() {
    let mut n = 0;
    for entry in
        fs::read_dir(parser_dir().join("testfiles-negative")).unwrap_or_else(|e| panic!("{e}"))
    {
        let case = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let src = read(&case.join("Dockerfile"));
        assert!(parse_syntax(&src).is_err(), "{} parsed but must fail", case.display());
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn buildkit_line_numbers() {
    let src = read(&parser_dir().join("testfile-line/Dockerfile"));
    let tree = parse_syntax(&src).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<_> = tree.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
    assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn scanner_limits_and_warnings() {
    let long = format!("FROM a\nLABEL {}\n", "a".repeat(65_536));
    let err = parse_syntax(&long).expect_err("an over-long line must fail");
    assert_eq!(err.kind.to_string(), "dockerfile line greater than max allowed size of 65535");
    let src = "FROM a\nRUN a \\\n\n b\nRUN c \\\n  \n d\nRUN e \\\n # only a comment\n f\n";
    let tree = parse_syntax(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tree.warnings.len(), 2);
    assert!(tree.warnings[0].message.starts_with("Empty continuation line found in: "));
}

/// `shell/envVarTest`: single-word expansion. `W` lines run in Windows mode (names match
/// without regard to case).
#[test]
fn shell_env_var_test() {
    let text = read(&corpus().join("buildkit/frontend/dockerfile/shell/envVarTest"));
    let pairs = [("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")];
    let unix = MapEnv::from_pairs(pairs);
    let windows = MapEnv::from_pairs(pairs).case_insensitive();
    let lexer = Lexer::new('\\');
    let mut ran = 0;
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(fields.len(), 3, "line {}: bad test line", i + 1);
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        let env = match platform {
            "A" | "U" => &unix,
            "W" => &windows,
            other => panic!("line {}: unknown platform {other}", i + 1),
        };
        ran += 1;
        let got = lexer.process_word(input, env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(v), e) => e != "error" && v == e,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {} [{platform}] {input:?}: expected {expected:?}, got {got:?}",
                i + 1
            ));
        }
    }
    assert_eq!(ran, 230);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// `shell/wordsTest`: expansion with word splitting.
#[test]
fn shell_words_test() {
    let text = read(&corpus().join("buildkit/frontend/dockerfile/shell/wordsTest"));
    let mut env = MapEnv::default();
    let lexer = Lexer::new('\\');
    let mut ran = 0;
    let mut failures = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(def) = line.strip_prefix("ENV ") {
            let def = def.trim_start_matches(' ');
            let (k, v) = def.split_once('=').unwrap_or((def, ""));
            env.set(k, v);
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 2, "line {}: bad test line", i + 1);
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        let got = lexer.process_words(input, &env).unwrap_or_else(|_| vec!["error".to_string()]);
        ran += 1;
        if got != expected {
            failures.push(format!("line {}: {input:?}: expected {expected:?}, got {got:?}", i + 1));
        }
    }
    assert_eq!(ran, 24);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Inputs that once crashed or could crash the parser (fuzzer finds and hand-made hazards:
/// deep nesting, multi-byte characters split by byte-level rules). Each must parse or fail
/// cleanly through every layer.
#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // Run on a thread with a small stack, like a test runner's or a tokio worker's.
        let handle = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                if let Ok(tree) = parse_syntax(&text) {
                    let _ = dump(&tree);
                    if let Ok(df) = rbuild_parser::Dockerfile::from_tree(tree) {
                        if let Ok(g) = rbuild_parser::StageGraph::build(&df, &Default::default()) {
                            let _ = g.order_for(None);
                        }
                    }
                }
                let _ = Lexer::new('\\').process_words(&text, &MapEnv::default());
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(handle.join().is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n >= 5, "expected the regression inputs in {}", dir.display());
}

/// Every real-world Dockerfile types and forms a stage graph, except the few that BuildKit
/// refuses too (each listed with why).
#[test]
fn real_world_dockerfiles_validate() {
    let expected_failures = [
        ("tests__bud__buildkit-mount__Dockerfile", "invalid field 'z'"), // buildah's SELinux option
        ("tests__bud__buildkit-mount__Dockerfilemultiplemounts", "invalid field 'z'"),
        ("tests__bud__add-chmod__Dockerfile.bad", "missing a value on flag: --chmod"),
        ("tests__bud__unrecognized__Dockerfile", "unknown instruction: BOGUS"),
        (
            "tests__bud__save-stages__Dockerfile.arg-build-stages-and-chained-build-stages",
            "invalid name for build stage",
        ),
        ("src__Dockerfile.rego", "unknown instruction: package"), // a Rego policy, not a Dockerfile
    ];
    let root = corpus().join("real-world");
    let mut checked = 0;
    let mut unexpected = Vec::new();
    for repo in fs::read_dir(&root).unwrap_or_else(|e| panic!("{e}")) {
        let repo = repo.unwrap_or_else(|e| panic!("{e}")).path();
        if !repo.is_dir() || repo.ends_with("_licenses") {
            continue;
        }
        for file in fs::read_dir(&repo).unwrap_or_else(|e| panic!("{e}")) {
            let path = file.unwrap_or_else(|e| panic!("{e}")).path();
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let result = rbuild_parser::parse(&read(&path)).and_then(|df| {
                let graph = rbuild_parser::StageGraph::build(&df, &Default::default())?;
                graph.order_for(None).map(|_| ())
            });
            checked += 1;
            let expected = expected_failures.iter().find(|(n, _)| *n == name);
            match (result, expected) {
                (Ok(()), None) => {}
                (Err(e), Some((_, why))) if e.kind.to_string().contains(why) => {}
                (Err(e), _) => unexpected.push(format!("{}: {e}", path.display())),
                (Ok(()), Some(_)) => {
                    unexpected.push(format!("{}: expected to fail", path.display()))
                }
            }
        }
    }
    assert!(checked >= 190, "only {checked} files");
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}
