//! Build checks: BuildKit's Dockerfile lint rules, with its rule names, messages and
//! documentation links, run over a parsed Dockerfile.
//!
//! The rules and when each fires follow BuildKit's Dockerfile frontend (its `linter`
//! package and the checks in its converter). Two inputs come from outside: what a base image
//! brings (its environment, whether it sets a shell) and the `.dockerignore` patterns. The
//! configuration comes from the `# check=` directive or the `BUILDKIT_DOCKERFILE_CHECK`
//! build argument ([`CheckConfig::parse`]).
//!
//! ```
//! use rbuild_parser::checks::{check, CheckConfig, CheckInput};
//! let df = rbuild_parser::parse("FROM busybox as Builder\nMAINTAINER me\n")?;
//! let found = check(&df, "", &CheckInput::default(), &CheckConfig::default());
//! let names: Vec<&str> = found.iter().map(|f| f.rule.name).collect();
//! assert_eq!(names, ["StageNameCasing", "FromAsCasing", "MaintainerDeprecated"]);
//! # Ok::<(), rbuild_parser::ParseError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerignore::{clean_path, IgnoreMatcher};
use crate::instructions::{Command, Dockerfile, HealthCheck, InstructionKind};
use crate::shell::{Env, Lexer};
use crate::syntax::Node;

/// One rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name, as `# check=skip=` takes it.
    pub name: &'static str,
    /// What it checks.
    pub description: &'static str,
    /// Its documentation.
    pub url: &'static str,
    /// Runs only when enabled by `experimental=`.
    pub experimental: bool,
}

macro_rules! rules {
    ($($id:ident, $name:literal, $slug:literal, $exp:literal, $desc:literal;)*) => {
        $(
            #[doc = $desc]
            pub const $id: Rule = Rule {
                name: $name,
                description: $desc,
                url: concat!("https://docs.docker.com/go/dockerfile/rule/", $slug, "/"),
                experimental: $exp,
            };
        )*
        /// Every rule, in the order of BuildKit's rule set.
        pub const RULES: &[&Rule] = &[$(&$id),*];
    };
}

rules! {
    STAGE_NAME_CASING, "StageNameCasing", "stage-name-casing", false,
        "Stage names should be lowercase";
    FROM_AS_CASING, "FromAsCasing", "from-as-casing", false,
        "The 'as' keyword should match the case of the 'from' keyword";
    NO_EMPTY_CONTINUATION, "NoEmptyContinuation", "no-empty-continuation", false,
        "Empty continuation lines will become errors in a future release";
    CONSISTENT_INSTRUCTION_CASING, "ConsistentInstructionCasing", "consistent-instruction-casing", false,
        "All commands within the Dockerfile should use the same casing (either upper or lower)";
    DUPLICATE_STAGE_NAME, "DuplicateStageName", "duplicate-stage-name", false,
        "Stage names should be unique";
    RESERVED_STAGE_NAME, "ReservedStageName", "reserved-stage-name", false,
        "Reserved words should not be used as stage names";
    JSON_ARGS_RECOMMENDED, "JSONArgsRecommended", "json-args-recommended", false,
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals";
    MAINTAINER_DEPRECATED, "MaintainerDeprecated", "maintainer-deprecated", false,
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author";
    UNDEFINED_ARG_IN_FROM, "UndefinedArgInFrom", "undefined-arg-in-from", false,
        "FROM command must use declared ARGs";
    WORKDIR_RELATIVE_PATH, "WorkdirRelativePath", "workdir-relative-path", false,
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes";
    UNDEFINED_VAR, "UndefinedVar", "undefined-var", false,
        "Variables should be defined before their use";
    MULTIPLE_INSTRUCTIONS_DISALLOWED, "MultipleInstructionsDisallowed", "multiple-instructions-disallowed", false,
        "Multiple instructions of the same type should not be used in the same stage";
    LEGACY_KEY_VALUE_FORMAT, "LegacyKeyValueFormat", "legacy-key-value-format", false,
        "Legacy key/value format with whitespace separator should not be used";
    REDUNDANT_TARGET_PLATFORM, "RedundantTargetPlatform", "redundant-target-platform", false,
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior";
    SECRETS_USED_IN_ARG_OR_ENV, "SecretsUsedInArgOrEnv", "secrets-used-in-arg-or-env", false,
        "Sensitive data should not be used in the ARG or ENV commands";
    INVALID_DEFAULT_ARG_IN_FROM, "InvalidDefaultArgInFrom", "invalid-default-arg-in-from", false,
        "Default value for global ARG results in an empty or invalid base image name";
    FROM_PLATFORM_FLAG_CONST_DISALLOWED, "FromPlatformFlagConstDisallowed", "from-platform-flag-const-disallowed", false,
        "FROM --platform flag should not use a constant value";
    COPY_IGNORED_FILE, "CopyIgnoredFile", "copy-ignored-file", false,
        "Attempting to Copy file that is excluded by .dockerignore";
    INVALID_DEFINITION_DESCRIPTION, "InvalidDefinitionDescription", "invalid-definition-description", true,
        "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.";
    EXPOSE_PROTO_CASING, "ExposeProtoCasing", "expose-proto-casing", false,
        "Protocol in EXPOSE instruction should be lowercase";
    EXPOSE_INVALID_FORMAT, "ExposeInvalidFormat", "expose-invalid-format", false,
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release";
}

/// One warning: the rule, its message, and the lines of the instruction it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// The message, as BuildKit words it.
    pub message: String,
    /// First line of the instruction (1-based; 0 when it is about no line).
    pub line: usize,
    /// Last line of the instruction.
    pub end_line: usize,
}

/// Which rules run and whether a finding fails the build: the value of `# check=` or of
/// the build argument `BUILDKIT_DOCKERFILE_CHECK` (which replaces the directive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=Rule1,Rule2`.
    pub skip: Vec<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=Rule1,Rule2`.
    pub experimental: Vec<String>,
    /// `error=true`: findings fail the build.
    pub error: bool,
}

impl CheckConfig {
    /// Parses `skip=...;experimental=...;error=true` (each part optional), as BuildKit does
    /// (its errors' words too).
    pub fn parse(text: &str) -> Result<CheckConfig, String> {
        let mut config = CheckConfig::default();
        let text = text.trim();
        if text.is_empty() {
            return Ok(config);
        }
        let list = |v: &str| v.split(',').map(|r| r.trim().to_string()).collect::<Vec<_>>();
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let value = value.trim();
            match key.trim() {
                "skip" if value == "all" => config.skip_all = true,
                "skip" => config.skip = list(value),
                "experimental" if value == "all" => config.experimental_all = true,
                "experimental" => config.experimental = list(value),
                "error" => {
                    config.error = go_parse_bool(value).ok_or_else(|| {
                        format!("failed to parse check option {part:?}: invalid syntax")
                    })?
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(config)
    }

    /// The configuration of a build: `BUILDKIT_DOCKERFILE_CHECK` when given, else the
    /// Dockerfile's `# check=` directive (its first word).
    pub fn for_build(
        df: &Dockerfile,
        build_args: &BTreeMap<String, String>,
    ) -> Result<CheckConfig, String> {
        if let Some(v) = build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
            return CheckConfig::parse(v);
        }
        let directive = df.tree.directive("check").unwrap_or("");
        CheckConfig::parse(directive.split(' ').next().unwrap_or(""))
            .map_err(|e| format!("failed to parse check options: {e}"))
    }

    /// Whether `rule` runs.
    pub fn runs(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.iter().any(|r| r == rule.name)
        } else {
            !self.skip_all && !self.skip.iter().any(|r| r == rule.name)
        }
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// What a base image brings to the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// Its environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Whether its configuration sets a shell (`SHELL`).
    pub shell: bool,
}

/// Finds a base image by name (ARGs expanded); `None` when it is not known.
pub type BaseLookup<'a> = dyn Fn(&str) -> Option<BaseImage> + 'a;

/// What the checks need besides the Dockerfile.
#[derive(Default)]
pub struct CheckInput<'a> {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The automatic ARGs a build defines (`TARGETPLATFORM`, `BUILDARCH` ...).
    pub automatic_args: Vec<(String, String)>,
    /// A base image by its name with ARGs expanded; `None` when it is not known, and then
    /// the stage's undefined-variable check is left out rather than guessed.
    pub base: Option<&'a BaseLookup<'a>>,
    /// The context's `.dockerignore`.
    pub ignore: Option<&'a IgnoreMatcher>,
}

impl std::fmt::Debug for CheckInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckInput")
            .field("build_args", &self.build_args)
            .field("automatic_args", &self.automatic_args)
            .field("base", &self.base.map(|_| "fn"))
            .field("ignore", &self.ignore)
            .finish()
    }
}

/// Runs every enabled rule over `df` (`source` is its text, for comments above
/// instructions); findings in BuildKit's order.
pub fn check(
    df: &Dockerfile,
    source: &str,
    input: &CheckInput<'_>,
    config: &CheckConfig,
) -> Vec<Finding> {
    let mut c = Checker { df, lines: source.lines().collect(), input, found: Vec::new() };
    c.empty_continuations();
    c.parse_time_rules();
    c.stage_names();
    c.casing();
    c.bases();
    c.stages();
    c.found.retain(|f| config.runs(f.rule));
    c.found
}

struct Checker<'a> {
    df: &'a Dockerfile,
    /// The source's lines, split once (comments above instructions are looked up in it).
    lines: Vec<&'a str>,
    input: &'a CheckInput<'a>,
    found: Vec<Finding>,
}

/// An [`Env`] that notes which names were looked up and found or not (BuildKit's matches
/// and non-matches).
struct Recording<'e> {
    vars: &'e BTreeMap<String, String>,
    matched: std::cell::RefCell<BTreeSet<String>>,
    unmatched: std::cell::RefCell<BTreeSet<String>>,
}

impl<'e> Recording<'e> {
    fn new(vars: &'e BTreeMap<String, String>) -> Self {
        Recording { vars, matched: Default::default(), unmatched: Default::default() }
    }
}

impl Env for Recording<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        match self.vars.get(name) {
            Some(v) => {
                self.matched.borrow_mut().insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.borrow_mut().insert(name.to_string());
                None
            }
        }
    }
}

/// The closest of `options` to `word` (Levenshtein distance under 3), as BuildKit suggests.
fn suggest<'o>(word: &str, options: impl IntoIterator<Item = &'o String>) -> Option<&'o str> {
    let mut best: Option<(&str, usize)> = None;
    for o in options {
        if o == word {
            return None;
        }
        let d = strsim::levenshtein(word, o);
        if d < best.map_or(3, |b| b.1) {
            best = Some((o, d));
        }
    }
    best.map(|b| b.0)
}

/// A stage's state while its instructions are walked.
#[derive(Clone, Default)]
struct StageState {
    /// Variables instructions are expanded with (base image ENV, ENV, ARG values).
    env: BTreeMap<String, String>,
    /// ARG names declared in the stage (used without a value, they are not undefined).
    declared: BTreeSet<String>,
    /// Whether a shell is set (base image or SHELL).
    shell: bool,
    /// Whether the base is known (else undefined variables are not reported).
    known: bool,
}

impl<'a> Checker<'a> {
    fn nodes(&self) -> &'a [Node] {
        &self.df.tree.nodes
    }

    fn push(&mut self, rule: &'static Rule, message: String, node: &Node) {
        self.found.push(Finding { rule, message, line: node.start_line, end_line: node.end_line });
    }

    /// Index of the first FROM: the instructions before it are global ARGs.
    fn first_from(&self) -> usize {
        self.df
            .instructions
            .iter()
            .position(|i| matches!(i.kind, InstructionKind::From { .. }))
            .unwrap_or(self.df.instructions.len())
    }

    fn empty_continuations(&mut self) {
        for w in &self.df.tree.warnings {
            if w.message.starts_with("Empty continuation line") {
                self.found.push(Finding {
                    rule: &NO_EMPTY_CONTINUATION,
                    message: "Empty continuation line".into(),
                    line: w.line,
                    end_line: w.line,
                });
            }
        }
    }

    /// The rules BuildKit checks while typing instructions, in file order.
    fn parse_time_rules(&mut self) {
        for (i, node) in self.nodes().iter().enumerate() {
            match node.name().as_str() {
                "maintainer" => self.push(
                    &MAINTAINER_DEPRECATED,
                    "Maintainer instruction is deprecated in favor of using label".into(),
                    node,
                ),
                "from" => {
                    let args = &node.args;
                    if args.len() == 3 && args[2] != args[2].to_lowercase() {
                        let m = format!("Stage name '{}' should be lowercase", args[2]);
                        self.push(&STAGE_NAME_CASING, m, node);
                    }
                    if args.len() >= 3 && !from_as_casing_matches(&node.keyword, &args[1]) {
                        let m = format!(
                            "'{}' and '{}' keywords' casing do not match",
                            args[1], node.keyword
                        );
                        self.push(&FROM_AS_CASING, m, node);
                    }
                    if let InstructionKind::From { name: Some(name), .. } =
                        &self.df.instructions[i].kind
                    {
                        self.description("FROM", std::slice::from_ref(name), node);
                    }
                }
                "arg" => {
                    if let InstructionKind::Arg(pairs) = &self.df.instructions[i].kind {
                        let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
                        self.description("ARG", &keys, node);
                    }
                }
                _ => {}
            }
        }
    }

    /// InvalidDefinitionDescription: the comment right above a FROM ... AS or an ARG should
    /// start with the name it describes.
    fn description(&mut self, instruction: &str, keys: &[String], node: &Node) {
        let Some(comment) = comment_above(&self.lines, node.start_line) else { return };
        let first = comment.split(' ').next().unwrap_or("");
        if keys.is_empty() || keys.iter().any(|k| k == first) {
            return;
        }
        let example = if keys.len() > 1 { "<arg_key>" } else { keys[0].as_str() };
        let m = format!(
            "Comment for {instruction} should follow the format: `# {example} <description>`"
        );
        self.push(&INVALID_DEFINITION_DESCRIPTION, m, node);
    }

    fn stage_names(&mut self) {
        let mut seen = BTreeSet::new();
        for (i, node) in self.nodes().iter().enumerate() {
            let InstructionKind::From { name: Some(name), .. } = &self.df.instructions[i].kind
            else {
                continue;
            };
            if name == "context" || name == "scratch" {
                let m =
                    format!("Stage name should not use the same name as reserved stage {name:?}");
                self.push(&RESERVED_STAGE_NAME, m, node);
            }
            if !seen.insert(name.clone()) {
                let m = format!("Duplicate stage name {name:?}, stage names should be unique");
                self.push(&DUPLICATE_STAGE_NAME, m, node);
            }
        }
    }

    /// ConsistentInstructionCasing: over the FROMs and the instructions of stages (global
    /// ARGs are not counted), the majority casing wins; a tie counts as upper case.
    fn casing(&mut self) {
        let first = self.first_from();
        let staged = &self.nodes()[first.min(self.nodes().len())..];
        let (mut lower, mut upper) = (0, 0);
        for n in staged {
            if n.keyword == n.keyword.to_lowercase() {
                lower += 1;
            } else if n.keyword == n.keyword.to_uppercase() {
                upper += 1;
            }
        }
        let majority_lower = lower > upper;
        for n in staged {
            let wrong = if majority_lower {
                (n.keyword != n.keyword.to_lowercase()).then_some("lowercase")
            } else {
                (n.keyword != n.keyword.to_uppercase()).then_some("uppercase")
            };
            if let Some(casing) = wrong {
                let m = format!(
                    "Command '{}' should match the case of the command majority ({casing})",
                    n.keyword
                );
                self.push(&CONSISTENT_INSTRUCTION_CASING, m, n);
            }
        }
    }

    /// The global ARGs as a build sees them: automatic ones, then each declared ARG with a
    /// value (`--build-arg` over its default, when `with_build_args`), in order. Also the
    /// names declared.
    fn global_args(&self, with_build_args: bool) -> (BTreeMap<String, String>, BTreeSet<String>) {
        let mut env: BTreeMap<String, String> = self.input.automatic_args.iter().cloned().collect();
        let mut declared = BTreeSet::new();
        let lexer = Lexer::new(self.df.tree.escape);
        for inst in &self.df.instructions[..self.first_from()] {
            let InstructionKind::Arg(pairs) = &inst.kind else { continue };
            for (k, default) in pairs {
                declared.insert(k.clone());
                let given = if with_build_args { self.input.build_args.get(k) } else { None };
                let value = match (given, default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => {
                        let rec = Recording::new(&env);
                        lexer.process_word(d, &rec).ok()
                    }
                    (None, None) => None,
                };
                if let Some(v) = value {
                    env.insert(k.clone(), v);
                }
            }
        }
        (env, declared)
    }

    /// The rules about FROM lines: InvalidDefaultArgInFrom (with defaults only), then per
    /// stage UndefinedArgInFrom, RedundantTargetPlatform, FromPlatformFlagConstDisallowed.
    fn bases(&mut self) {
        let lexer = Lexer::new(self.df.tree.escape);
        let (defaults, _) = self.global_args(false);
        let froms: Vec<(usize, String, Option<String>, Option<String>)> = self
            .df
            .instructions
            .iter()
            .enumerate()
            .filter_map(|(i, inst)| match &inst.kind {
                InstructionKind::From { image, platform, name } => {
                    Some((i, image.clone(), platform.clone(), name.clone()))
                }
                _ => None,
            })
            .collect();
        for (i, image, _, _) in &froms {
            let rec = Recording::new(&defaults);
            let valid = lexer.process_word(image, &rec).map(|r| plausible_reference(&r));
            if valid == Ok(false) {
                let m = format!(
                    "Default value for ARG {image} results in empty or invalid base image name"
                );
                self.push(&INVALID_DEFAULT_ARG_IN_FROM, m, &self.nodes()[*i]);
            }
        }
        let (globals, declared) = self.global_args(true);
        let keys: BTreeSet<String> = globals.keys().cloned().chain(declared).collect();
        for (i, image, platform, name) in froms {
            let node = &self.nodes()[i];
            let rec = Recording::new(&globals);
            let _ = lexer.process_word(&image, &rec);
            self.undefined_in_from(&rec, &keys, node);
            let Some(platform) = platform else { continue };
            let rec = Recording::new(&globals);
            let Ok(result) = lexer.process_word(&platform, &rec) else { continue };
            self.undefined_in_from(&rec, &keys, node);
            let (matched, unmatched) = (rec.matched.into_inner(), rec.unmatched.into_inner());
            if matched.len() == 1
                && unmatched.is_empty()
                && matched.contains("TARGETPLATFORM")
                && globals.get("TARGETPLATFORM") == Some(&result)
            {
                let m = format!("Setting platform to predefined {platform} in FROM is redundant as this is the default behavior");
                self.push(&REDUNDANT_TARGET_PLATFORM, m, node);
            }
            if matched.is_empty() && unmatched.is_empty() {
                let mut parts = result.split('/');
                let (os, arch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let stage = name.unwrap_or_default();
                let known_os = ["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd"];
                if known_os.contains(&os.to_lowercase().as_str())
                    && !stage.contains(os)
                    && (arch.is_empty() || !stage.contains(arch))
                {
                    let m =
                        format!("FROM --platform flag should not use constant value {result:?}");
                    self.push(&FROM_PLATFORM_FLAG_CONST_DISALLOWED, m, node);
                }
            }
        }
    }

    fn undefined_in_from(&mut self, rec: &Recording<'_>, keys: &BTreeSet<String>, node: &Node) {
        for arg in rec.unmatched.borrow().iter() {
            if keys.contains(arg) {
                continue;
            }
            let mut m = format!("FROM argument '{arg}' is not declared");
            if let Some(s) = suggest(arg, keys) {
                m.push_str(&format!(" (did you mean {s}?)"));
            }
            self.push(&UNDEFINED_ARG_IN_FROM, m, node);
        }
    }

    /// Walks each stage's instructions as BuildKit dispatches them.
    fn stages(&mut self) {
        let (globals, _) = self.global_args(true);
        let lexer = Lexer::new(self.df.tree.escape);
        let mut finished: BTreeMap<String, StageState> = BTreeMap::new();
        let first = self.first_from();
        let mut i = first;
        while i < self.df.instructions.len() {
            let InstructionKind::From { image, name, .. } = &self.df.instructions[i].kind else {
                i += 1;
                continue;
            };
            let base = lexer.process_word(image, &Recording::new(&globals)).unwrap_or_default();
            let mut st = match finished.get(&base.to_lowercase()) {
                Some(parent) => StageState { declared: BTreeSet::new(), ..parent.clone() },
                None => self.external_base(&base),
            };
            let end = self.df.instructions[i + 1..]
                .iter()
                .position(|x| matches!(x.kind, InstructionKind::From { .. }))
                .map_or(self.df.instructions.len(), |p| i + 1 + p);
            let mut used: BTreeMap<&str, usize> = BTreeMap::new();
            let mut workdir_set = false;
            for j in i + 1..end {
                self.dispatch(j, &mut st, &globals, &mut used, &mut workdir_set);
            }
            if let Some(name) = name {
                finished.insert(name.clone(), st);
            }
            i = end;
        }
    }

    fn external_base(&self, base: &str) -> StageState {
        if base == "scratch" {
            return StageState { known: true, ..Default::default() };
        }
        match self.input.base.and_then(|f| f(base)) {
            Some(b) => StageState {
                env: b.env.iter().map(|kv| split_kv(kv)).collect(),
                declared: BTreeSet::new(),
                shell: b.shell,
                known: true,
            },
            None => StageState::default(),
        }
    }

    /// Expands `word` in the stage, reporting undefined variables at `node`.
    fn expand(&mut self, word: &str, st: &StageState, node: &Node, raw: bool) -> String {
        let mut lexer = Lexer::new(self.df.tree.escape);
        lexer.skip_process_quotes = raw;
        let rec = Recording::new(&st.env);
        let out = lexer.process_word(word, &rec).unwrap_or_default();
        if st.known {
            for var in rec.unmatched.borrow().iter() {
                if st.declared.contains(var) || var.starts_with("BUILDKIT_SBOM_SCAN_") {
                    continue;
                }
                let mut m = format!("Usage of undefined variable '${var}'");
                if let Some(s) = suggest(var, st.env.keys()) {
                    m.push_str(&format!(" (did you mean ${s}?)"));
                }
                self.push(&UNDEFINED_VAR, m, node);
            }
        }
        out
    }

    fn dispatch(
        &mut self,
        j: usize,
        st: &mut StageState,
        globals: &BTreeMap<String, String>,
        used: &mut BTreeMap<&'static str, usize>,
        workdir_set: &mut bool,
    ) {
        let node = &self.nodes()[j];
        let kind = &self.df.instructions[j].kind;
        match kind {
            InstructionKind::Env(pairs) => {
                let expanded: Vec<(String, String)> = pairs
                    .iter()
                    .map(|(k, v)| {
                        (self.expand(k, st, node, false), self.expand(v, st, node, false))
                    })
                    .collect();
                let legacy = node.args.chunks(3).filter(|c| c.get(2).is_some_and(|s| s.is_empty()));
                for _ in legacy {
                    let m = "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format";
                    self.push(&LEGACY_KEY_VALUE_FORMAT, m.into(), node);
                }
                for (k, v) in expanded {
                    self.secret("ENV", &k, node);
                    st.env.insert(k, v);
                }
            }
            InstructionKind::Label(pairs) => {
                for (k, v) in pairs {
                    self.expand(k, st, node, false);
                    self.expand(v, st, node, false);
                }
                let legacy = node.args.chunks(3).filter(|c| c.get(2).is_some_and(|s| s.is_empty()));
                for _ in legacy {
                    let m = "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format";
                    self.push(&LEGACY_KEY_VALUE_FORMAT, m.into(), node);
                }
            }
            InstructionKind::Arg(pairs) => {
                for (k, default) in pairs {
                    self.secret("ARG", k, node);
                    let value = match (self.input.build_args.get(k), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(self.expand(d, st, node, false)),
                        (None, None) => globals.get(k).cloned(),
                    };
                    st.declared.insert(k.clone());
                    if let Some(v) = value {
                        st.env.insert(k.clone(), v);
                    }
                }
            }
            InstructionKind::Workdir(path) => {
                let path = self.expand(path, st, node, false);
                if !*workdir_set && !path.starts_with('/') {
                    let m = format!("Relative workdir {path:?} can have unexpected results if the base image changes");
                    self.push(&WORKDIR_RELATIVE_PATH, m, node);
                }
                *workdir_set = true;
            }
            InstructionKind::User(u) | InstructionKind::StopSignal(u) => {
                self.expand(u, st, node, false);
            }
            InstructionKind::Volume(paths) => {
                for p in paths {
                    self.expand(p, st, node, false);
                }
            }
            InstructionKind::Shell(_) => st.shell = true,
            InstructionKind::Cmd(cmd) | InstructionKind::Entrypoint(cmd) => {
                let which =
                    if matches!(kind, InstructionKind::Cmd(_)) { "CMD" } else { "ENTRYPOINT" };
                self.used_once(which, used, j);
                if matches!(cmd, Command::Shell(_)) && !st.shell {
                    let m = format!("JSON arguments recommended for {} to prevent unintended behavior related to OS signals", node.keyword);
                    self.push(&JSON_ARGS_RECOMMENDED, m, node);
                }
            }
            InstructionKind::Healthcheck(h) => {
                self.used_once("HEALTHCHECK", used, j);
                let _: &HealthCheck = h;
            }
            InstructionKind::Expose(ports) => {
                for p in ports {
                    let p = self.expand(p, st, node, false);
                    self.expose(&p, node);
                }
            }
            InstructionKind::Copy(c) | InstructionKind::Add(c) => {
                let add = matches!(kind, InstructionKind::Add(_));
                for w in [&c.chown, &c.chmod].into_iter().flatten() {
                    self.expand(w, st, node, false);
                }
                if add {
                    if let Some(sum) = &c.checksum {
                        self.expand(sum, st, node, false);
                    }
                }
                let sources: Vec<String> =
                    c.sources.iter().map(|s| self.expand(s, st, node, false)).collect();
                self.expand(&c.dest, st, node, false);
                for h in c.heredocs.iter().filter(|h| h.expand) {
                    self.expand(&h.content, st, node, true);
                }
                if c.from.is_none() {
                    for s in sources.iter().filter(|s| !c.heredocs.iter().any(|h| &h.name == *s)) {
                        self.ignored(s, if add { "Add" } else { "Copy" }, node);
                    }
                }
            }
            _ => {}
        }
    }

    /// MultipleInstructionsDisallowed: reported at the earlier instruction, which is the
    /// one that has no effect.
    fn used_once(
        &mut self,
        which: &'static str,
        used: &mut BTreeMap<&'static str, usize>,
        j: usize,
    ) {
        if let Some(prev) = used.insert(which, j) {
            let node = &self.nodes()[prev];
            let m = format!("Multiple {} instructions should not be used in the same stage because only the last one will be used", self.nodes()[j].keyword);
            self.push(&MULTIPLE_INSTRUCTIONS_DISALLOWED, m, node);
        }
    }

    fn secret(&mut self, instruction: &str, key: &str, node: &Node) {
        // BuildKit's pattern: one of the words (split at `_`, any case) is a secret word,
        // and none is an allowed one.
        let words: Vec<String> = key.split('_').map(str::to_lowercase).collect();
        let edge = |set: &[&str]| words.iter().any(|w| set.contains(&w.as_str()));
        let deny = [
            "apikey",
            "auth",
            "credential",
            "credentials",
            "key",
            "password",
            "pword",
            "passwd",
            "secret",
            "token",
        ];
        let allow = ["public", "file", "version"];
        if edge(&deny) && !edge(&allow) {
            let m = format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            );
            self.push(&SECRETS_USED_IN_ARG_OR_ENV, m, node);
        }
    }

    fn expose(&mut self, raw: &str, node: &Node) {
        let (rest, proto) = match raw.rsplit_once('/') {
            Some((r, p)) => (r, p),
            None => (raw, ""),
        };
        if proto != proto.to_lowercase() {
            let m = format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase");
            self.push(&EXPOSE_PROTO_CASING, m, node);
        }
        if rest.contains(':') {
            let m = format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'");
            self.push(&EXPOSE_INVALID_FORMAT, m, node);
        }
    }

    /// CopyIgnoredFile: a context source that `.dockerignore` excludes (not checked when
    /// the file has exceptions, which make the answer depend on the files, as BuildKit).
    fn ignored(&mut self, source: &str, verb: &str, node: &Node) {
        let Some(ignore) = self.input.ignore else { return };
        if ignore.has_exceptions() {
            return;
        }
        let cleaned = clean_path(source);
        let path = cleaned.trim_start_matches('/');
        let root = path.is_empty() || path == ".";
        if root
            && !ignore
                .patterns()
                .any(|(p, exception)| !exception && ["*", "**", "**/*"].contains(&p))
        {
            return;
        }
        let shown = if cleaned.is_empty() { "." } else { cleaned.as_str() };
        if ignore.excludes(if root { "." } else { path }) || root {
            let m =
                format!("Attempting to {verb} file {shown:?} that is excluded by .dockerignore");
            self.push(&COPY_IGNORED_FILE, m, node);
        }
    }
}

/// The text of the comment on the line right above line `line` (1-based) of `lines`, after
/// its `#`, trimmed: where BuildKit reads the description of a stage or an ARG.
pub fn comment_above<'s>(lines: &[&'s str], line: usize) -> Option<&'s str> {
    let above = lines.get(line.checked_sub(2)?)?;
    above.trim_start().strip_prefix('#').map(str::trim)
}

fn split_kv(kv: &str) -> (String, String) {
    match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (kv.to_string(), String::new()),
    }
}

fn from_as_casing_matches(from: &str, as_word: &str) -> bool {
    let lower = from == from.to_lowercase();
    let upper = from == from.to_uppercase();
    if !lower && !upper {
        return true;
    }
    if lower {
        as_word == as_word.to_lowercase()
    } else {
        as_word == as_word.to_uppercase()
    }
}

/// Whether a base image name could be a reference (`reference.ParseNormalizedNamed`'s
/// grammar, in short): not empty, no upper case in the repository path, no white space, and
/// only the characters references use.
fn plausible_reference(name: &str) -> bool {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return false;
    }
    let (path, _digest) = name.split_once('@').unwrap_or((name, ""));
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    let repo_end = path[last_slash..].find(':').map_or(path.len(), |i| last_slash + i);
    let (domain, repo) = match path[..repo_end].split_once('/') {
        Some((d, r)) if d.contains(['.', ':']) || d == "localhost" => (d, r),
        _ => ("", &path[..repo_end]),
    };
    let tag = &path[repo_end..].trim_start_matches(':');
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        });
    let tag_ok = path[repo_end..].is_empty()
        || (!tag.is_empty()
            && tag.len() <= 128
            && tag.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch)));
    let _ = domain;
    repo_ok && tag_ok
}

pub mod hadolint;

#[cfg(test)]
mod tests;
