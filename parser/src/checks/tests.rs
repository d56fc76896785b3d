//! One positive and one negative case per rule, messages as BuildKit words them.

use super::*;

fn base(name: &str) -> Option<BaseImage> {
    match name {
        "busybox" | "debian:12" | "alpine" => {
            Some(BaseImage { env: vec!["PATH=/usr/bin:/bin".into()], shell: false })
        }
        "withshell" => Some(BaseImage { env: vec![], shell: true }),
        _ => None,
    }
}

fn run_with(text: &str, config: &CheckConfig, ignore: Option<&IgnoreMatcher>) -> Vec<String> {
    let df = crate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let lookup = base;
    let input = CheckInput {
        automatic_args: vec![
            ("TARGETPLATFORM".into(), "linux/amd64".into()),
            ("TARGETARCH".into(), "amd64".into()),
            ("BUILDPLATFORM".into(), "linux/amd64".into()),
        ],
        base: Some(&lookup),
        ignore,
        ..Default::default()
    };
    check(&df, text, &input, config)
        .into_iter()
        .map(|f| format!("{}: {} (line {})", f.rule.name, f.message, f.line))
        .collect()
}

fn run(text: &str) -> Vec<String> {
    run_with(text, &CheckConfig::default(), None)
}

/// `text` gives exactly `want` of `rule`, and `clean` gives none of it.
fn case(rule: &str, text: &str, want: &[&str], clean: &str) {
    let got: Vec<String> = run(text).into_iter().filter(|f| f.starts_with(rule)).collect();
    assert_eq!(got, want, "{rule} on:\n{text}");
    let none: Vec<String> = run(clean).into_iter().filter(|f| f.starts_with(rule)).collect();
    assert!(none.is_empty(), "{rule} should not fire on:\n{clean}\n{none:?}");
}

#[test]
fn stage_name_and_from_as_casing() {
    case(
        "StageNameCasing",
        "FROM busybox AS Builder\n",
        &["StageNameCasing: Stage name 'Builder' should be lowercase (line 1)"],
        "FROM busybox AS builder\n",
    );
    case(
        "FromAsCasing",
        "FROM busybox as builder\n",
        &["FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)"],
        "from busybox as builder\nFROM busybox AS b2\n",
    );
}

#[test]
fn empty_continuation() {
    case(
        "NoEmptyContinuation",
        "FROM busybox\nRUN echo a \\\n\n  b\n",
        &["NoEmptyContinuation: Empty continuation line (line 2)"],
        "FROM busybox\nRUN echo a \\\n  b\n",
    );
}

#[test]
fn consistent_instruction_casing() {
    case(
        "ConsistentInstructionCasing",
        "FROM busybox\nrun true\nRUN true\n",
        &["ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase) (line 2)"],
        "arg X=1\nFROM busybox\nRUN true\n",
    );
    case(
        "ConsistentInstructionCasing",
        "from busybox\nrun true\nRun true\n",
        &["ConsistentInstructionCasing: Command 'Run' should match the case of the command majority (lowercase) (line 3)"],
        "from busybox\nrun true\n",
    );
}

#[test]
fn duplicate_and_reserved_stage_names() {
    case(
        "DuplicateStageName",
        "FROM busybox AS a\nFROM busybox AS a\n",
        &["DuplicateStageName: Duplicate stage name \"a\", stage names should be unique (line 2)"],
        "FROM busybox AS a\nFROM busybox AS b\n",
    );
    case(
        "ReservedStageName",
        "FROM busybox AS scratch\n",
        &["ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (line 1)"],
        "FROM busybox AS scratchpad\n",
    );
}

#[test]
fn json_args_and_multiple_instructions() {
    case(
        "JSONArgsRecommended",
        "FROM busybox\nCMD echo hi\n",
        &["JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)"],
        "FROM busybox\nCMD [\"echo\", \"hi\"]\nFROM busybox\nSHELL [\"/bin/sh\", \"-c\"]\nENTRYPOINT echo\nFROM withshell\nCMD echo\n",
    );
    case(
        "MultipleInstructionsDisallowed",
        "FROM busybox\nCMD [\"a\"]\nCMD [\"b\"]\n",
        &["MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 2)"],
        "FROM busybox\nCMD [\"a\"]\nFROM busybox\nCMD [\"b\"]\nENTRYPOINT [\"c\"]\n",
    );
}

#[test]
fn maintainer() {
    case(
        "MaintainerDeprecated",
        "FROM busybox\nMAINTAINER me\n",
        &["MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)"],
        "FROM busybox\nLABEL org.opencontainers.image.authors=me\n",
    );
}

#[test]
fn args_in_from() {
    case(
        "UndefinedArgInFrom",
        "ARG VERSION=1\nFROM busybox:${VERSON}\n",
        &["UndefinedArgInFrom: FROM argument 'VERSON' is not declared (did you mean VERSION?) (line 2)"],
        "ARG VERSION\nFROM busybox:${VERSION:-1}\nFROM --platform=$BUILDPLATFORM busybox\n",
    );
    case(
        "InvalidDefaultArgInFrom",
        "ARG TAG\nFROM busybox:${TAG}\n",
        &["InvalidDefaultArgInFrom: Default value for ARG busybox:${TAG} results in empty or invalid base image name (line 2)"],
        "ARG TAG=1\nFROM busybox:${TAG}\n",
    );
    case(
        "RedundantTargetPlatform",
        "FROM --platform=$TARGETPLATFORM busybox\n",
        &["RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior (line 1)"],
        "FROM --platform=$BUILDPLATFORM busybox\n",
    );
    case(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform=linux/amd64 busybox AS build\n",
        &["FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 1)"],
        "FROM --platform=linux/amd64 busybox AS build-amd64\n",
    );
}

#[test]
fn workdir_and_undefined_var() {
    case(
        "WorkdirRelativePath",
        "FROM busybox\nWORKDIR app\n",
        &["WorkdirRelativePath: Relative workdir \"app\" can have unexpected results if the base image changes (line 2)"],
        "FROM busybox\nWORKDIR /app\nWORKDIR sub\n",
    );
    case(
        "UndefinedVar",
        "FROM busybox\nENV PATH=$PATH:/x\nCOPY $SRC /dst\nENV A=$PTH\n",
        &[
            "UndefinedVar: Usage of undefined variable '$SRC' (line 3)",
            "UndefinedVar: Usage of undefined variable '$PTH' (did you mean $PATH?) (line 4)",
        ],
        "FROM busybox\nARG SRC\nCOPY $SRC /dst\nENV A=1\nWORKDIR /$A\nRUN echo $NOT_CHECKED\nFROM unknown\nCOPY $X /\n",
    );
}

#[test]
fn key_value_secrets_and_expose() {
    case(
        "LegacyKeyValueFormat",
        "FROM busybox\nENV A 1\nLABEL b 2\n",
        &[
            "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 2)",
            "LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format (line 3)",
        ],
        "FROM busybox\nENV A=1\nLABEL b=2\n",
    );
    case(
        "SecretsUsedInArgOrEnv",
        "FROM busybox\nARG GITHUB_TOKEN\nENV DB_PASSWORD_X=1\n",
        &[
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"GITHUB_TOKEN\") (line 2)",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"DB_PASSWORD_X\") (line 3)",
        ],
        "FROM busybox\nARG PUBLIC_KEY\nENV KEYBOARD=us TOKEN_FILE=/t\n",
    );
    case(
        "ExposeProtoCasing",
        "FROM busybox\nEXPOSE 80/TCP\n",
        &["ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase (line 2)"],
        "FROM busybox\nEXPOSE 80/tcp 53/udp 8080\n",
    );
    case(
        "ExposeInvalidFormat",
        "FROM busybox\nEXPOSE 127.0.0.1:80:80\n",
        &["ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80' (line 2)"],
        "FROM busybox\nEXPOSE 80\n",
    );
}

#[test]
fn copy_ignored_file() {
    let ignore = IgnoreMatcher::parse("secret.txt\nbuild/\n").unwrap();
    let got = run_with(
        "FROM busybox\nCOPY secret.txt build/out ok.txt /dst/\nCOPY --from=busybox secret.txt /x\n",
        &CheckConfig::default(),
        Some(&ignore),
    );
    assert_eq!(
        got,
        [
            "CopyIgnoredFile: Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore (line 2)",
            "CopyIgnoredFile: Attempting to Copy file \"build/out\" that is excluded by .dockerignore (line 2)",
        ]
    );
    let with_exception = IgnoreMatcher::parse("secret.txt\n!keep\n").unwrap();
    let got = run_with(
        "FROM busybox\nCOPY secret.txt /\n",
        &CheckConfig::default(),
        Some(&with_exception),
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn definition_descriptions_are_experimental() {
    let text = "# the stage that builds\nFROM busybox AS build\n# VERSION to use\nARG VERSION\n";
    assert!(run(text).is_empty());
    let config = CheckConfig::parse("experimental=InvalidDefinitionDescription").unwrap();
    assert_eq!(
        run_with(text, &config, None),
        ["InvalidDefinitionDescription: Comment for FROM should follow the format: `# build <description>` (line 2)"]
    );
    let good = "# build the stage that builds\nFROM busybox AS build\n";
    assert!(run_with(good, &config, None).is_empty());
}

#[test]
fn configuration() {
    let text = "FROM busybox as Builder\nMAINTAINER me\n";
    let skip = CheckConfig::parse("skip=StageNameCasing,FromAsCasing").unwrap();
    assert_eq!(run_with(text, &skip, None).len(), 1);
    let all = CheckConfig::parse("skip=all;error=true").unwrap();
    assert!(all.error && run_with(text, &all, None).is_empty());
    assert_eq!(
        CheckConfig::parse("error=maybe").unwrap_err(),
        "failed to parse check option \"error=maybe\": invalid syntax"
    );
    assert_eq!(CheckConfig::parse("bogus").unwrap_err(), "invalid check option \"bogus\"");
    let df = crate::parse("# check=skip=all\nFROM busybox\n").unwrap();
    assert!(CheckConfig::for_build(&df, &BTreeMap::new()).unwrap().skip_all);
    let args =
        BTreeMap::from([("BUILDKIT_DOCKERFILE_CHECK".to_string(), "error=true".to_string())]);
    let c = CheckConfig::for_build(&df, &args).unwrap();
    assert!(c.error && !c.skip_all, "the build argument replaces the directive");
    assert_eq!(RULES.len(), 21);
}

/// Hostile size: a Dockerfile of many commented ARGs and one ENV of many pairs is checked
/// in one pass (comments are looked up in lines split once; ENV references are collected
/// once per value), with every rule and hadolint's.
#[test]
fn large_dockerfiles_are_checked_in_linear_time() {
    let mut text = String::from("FROM busybox\n");
    for i in 0..50_000 {
        text.push_str(&format!("# not a description\nARG A{i}=1\n"));
    }
    text.push_str("ENV");
    for i in 0..50_000 {
        text.push_str(&format!(" E{i}=$E{} \\\n", i + 1));
    }
    text.push_str(" LAST=1\n");
    let df = crate::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let config = CheckConfig::parse("experimental=all").unwrap();
    let found = check(&df, &text, &CheckInput::default(), &config);
    let described = found.iter().filter(|f| f.rule.name == "InvalidDefinitionDescription").count();
    assert_eq!(described, 50_000);
    let dl3044 = hadolint::hadolint(&df).iter().filter(|f| f.code == "DL3044").count();
    assert_eq!(dl3044, 1);
}
