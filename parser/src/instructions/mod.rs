//! Typed instructions: the syntax tree's nodes with their flags checked and their
//! arguments given meaning.

mod flags;
mod mount;

use std::time::Duration;

pub use mount::{Mount, MountKind};

use crate::error::{ErrorKind, ParseError, Position, Span};
use crate::suggest::suggest_keyword;
use crate::syntax::{heredoc_from_word, Heredoc, Node, SyntaxTree};
use flags::{parse_go_duration, FlagType, Flags};

/// A command in shell form (run by the stage's shell) or exec form (argv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `RUN echo hi`: one string for the shell.
    Shell(String),
    /// `RUN ["echo", "hi"]`: the argument vector.
    Exec(Vec<String>),
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    /// The default sandbox.
    Sandbox,
    /// All capabilities (needs the builder to allow it).
    Insecure,
}

/// The sources, destination and options of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// Source paths (or URLs and git references for ADD), as written; heredoc markers are
    /// not among them.
    pub sources: Vec<String>,
    /// Destination path.
    pub dest: String,
    /// Inline files given as heredocs (`COPY <<EOF /dst`), named by their terminator.
    pub heredocs: Vec<Heredoc>,
    /// `--from`: a stage name or index, or an image (COPY only).
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`: the files form an independent layer.
    pub link: bool,
    /// `--parents`: keep the source's parent directories (COPY only).
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--checksum` of a remote source (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` for a git source (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack`: whether ADD extracts archives (`None`: the default rules).
    pub unpack: Option<bool>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Cmd {
        /// What to run.
        command: Command,
        /// `--interval`.
        interval: Option<Duration>,
        /// `--timeout`.
        timeout: Option<Duration>,
        /// `--start-period`.
        start_period: Option<Duration>,
        /// `--start-interval`.
        start_interval: Option<Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

/// What an instruction does, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `FROM [--platform=P] image [AS name]`.
    From {
        /// Image reference, stage name or `scratch`, as written (may hold `$ARG`s).
        image: String,
        /// `--platform`.
        platform: Option<String>,
        /// The stage name after `AS`, lower case.
        name: Option<String>,
    },
    /// `RUN`.
    Run {
        /// The command.
        command: Command,
        /// Heredocs (a heredoc-only RUN runs its first heredoc as a script).
        heredocs: Vec<Heredoc>,
        /// `--mount`s.
        mounts: Vec<Mount>,
        /// `--network`.
        network: Option<NetworkMode>,
        /// `--security`.
        security: Option<SecurityMode>,
    },
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
    /// `LABEL k=v ...` (values unexpanded, quotes kept).
    Label(Vec<(String, String)>),
    /// `MAINTAINER name`.
    Maintainer(String),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<String>),
    /// `ENV k=v ...` (values unexpanded, quotes kept).
    Env(Vec<(String, String)>),
    /// `ADD`.
    Add(CopySource),
    /// `COPY`.
    Copy(CopySource),
    /// `VOLUME path ...`.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `WORKDIR path`.
    Workdir(String),
    /// `ARG name[=default] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `ONBUILD instruction`.
    Onbuild(Box<Instruction>),
    /// `STOPSIGNAL signal`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(HealthCheck),
}

/// One typed instruction and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What it does.
    pub kind: InstructionKind,
    /// From the keyword to the last line consumed.
    pub span: Span,
    /// The logical line as written (continuations joined).
    pub original: String,
}

/// A whole Dockerfile: its syntax tree and its typed instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The syntax tree the instructions were built from.
    pub tree: SyntaxTree,
    /// One typed instruction per node, in order.
    pub instructions: Vec<Instruction>,
}

impl Dockerfile {
    /// Types every node of `tree`.
    pub fn from_tree(tree: SyntaxTree) -> Result<Self, ParseError> {
        let instructions = tree.nodes.iter().map(typed).collect::<Result<Vec<_>, _>>()?;
        Ok(Dockerfile { tree, instructions })
    }
}

fn node_span(node: &Node) -> Span {
    Span {
        start: Position::new(node.start_line, node.column),
        end: Position::new(node.end_line, node.column + node.keyword.chars().count()),
    }
}

/// Where a flag is: its column on the first line when it is found there, else the keyword.
fn flag_span(node: &Node, flag: &str) -> Span {
    let first_line = node.original.as_str();
    match first_line.find(&format!("--{flag}")) {
        Some(byte) if !flag.is_empty() => {
            let col = node.column + first_line[..byte].chars().count();
            let len = first_line[byte..]
                .split(char::is_whitespace)
                .next()
                .map_or(1, |w| w.chars().count());
            Span::on_line(node.start_line, col, len)
        }
        _ => node.keyword_span(),
    }
}

/// An instruction error and, when one flag is to blame, its name (for the caret).
struct Fail {
    kind: ErrorKind,
    flag: Option<String>,
}

impl From<ErrorKind> for Fail {
    fn from(kind: ErrorKind) -> Self {
        let flag = match &kind {
            ErrorKind::UnknownFlag { flag, .. } => Some(flag.clone()),
            _ => None,
        };
        Fail { kind, flag }
    }
}

/// Blames `flag` for an error.
fn at_flag(flag: &str) -> impl Fn(ErrorKind) -> Fail + '_ {
    move |kind| Fail { kind, flag: Some(flag.to_string()) }
}

fn typed(node: &Node) -> Result<Instruction, ParseError> {
    let kind = kind_of(node).map_err(|fail| {
        let span = match &fail.flag {
            Some(flag) => flag_span(node, flag),
            None => node.keyword_span(),
        };
        ParseError::new(fail.kind, span)
    })?;
    Ok(Instruction { kind, span: node_span(node), original: node.original.clone() })
}

fn command(node: &Node) -> Command {
    if node.json {
        Command::Exec(node.args.clone())
    } else {
        Command::Shell(node.args.first().cloned().unwrap_or_default())
    }
}

fn at_least_one(node: &Node, upper: &str) -> Result<(), ErrorKind> {
    if node.args.is_empty() {
        return Err(ErrorKind::Invalid(format!("{upper} requires at least one argument")));
    }
    Ok(())
}

fn exactly_one(node: &Node, upper: &str) -> Result<String, ErrorKind> {
    match node.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ErrorKind::Invalid(format!("{upper} requires exactly one argument"))),
    }
}

fn no_flags(node: &Node, upper: &str) -> Result<(), ErrorKind> {
    Flags::parse(upper, &node.flags, &[]).map(|_| ())
}

fn pairs(node: &Node, upper: &str) -> Result<Vec<(String, String)>, ErrorKind> {
    node.args
        .chunks(3)
        .map(|c| match c[0].as_str() {
            "" => Err(ErrorKind::Invalid(format!("{upper} names can not be blank"))),
            key => Ok((key.to_string(), c.get(1).cloned().unwrap_or_default())),
        })
        .collect()
}

fn kind_of(node: &Node) -> Result<InstructionKind, Fail> {
    let name = node.name();
    let upper = name.to_uppercase();
    use FlagType::{Bool, List, Value};
    Ok(match name.as_str() {
        "from" => {
            let flags = Flags::parse(&upper, &node.flags, &[("platform", Value)])?;
            let (image, stage) = match node.args.as_slice() {
                [image] => (image.clone(), None),
                [image, as_kw, stage] if as_kw.eq_ignore_ascii_case("as") => {
                    (image.clone(), Some(stage.to_lowercase()))
                }
                _ => {
                    return Err(Fail::from(ErrorKind::Invalid(
                        "FROM requires either one or three arguments".into(),
                    )))
                }
            };
            if let Some(stage) = &stage {
                let mut chars = stage.chars();
                let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                    && chars
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                if !valid {
                    return Err(Fail::from(ErrorKind::Invalid(format!(
                        "invalid name for build stage: {stage:?}, name can't start with a number or contain symbols"
                    ))));
                }
            }
            InstructionKind::From { image, platform: flags.string("platform"), name: stage }
        }
        "run" => {
            let flags = Flags::parse(
                &upper,
                &node.flags,
                &[("mount", List), ("network", Value), ("security", Value)],
            )?;
            // BuildKit accepts a RUN with nothing to run: the shell gets an empty command.

            let mounts = flags
                .list("mount")
                .iter()
                .map(|m| mount::parse_mount(m))
                .collect::<Result<_, _>>()
                .map_err(at_flag("mount"))?;
            let network = match flags.string("network").as_deref() {
                None => None,
                Some("default") => Some(NetworkMode::Default),
                Some("none") => Some(NetworkMode::None),
                Some("host") => Some(NetworkMode::Host),
                Some(other) => {
                    return Err(at_flag("network")(ErrorKind::Invalid(format!(
                        "unsupported network mode for --network: {other:?}"
                    ))))
                }
            };
            let security = match flags.string("security").as_deref() {
                None => None,
                Some("sandbox") => Some(SecurityMode::Sandbox),
                Some("insecure") => Some(SecurityMode::Insecure),
                Some(other) => {
                    return Err(at_flag("security")(ErrorKind::Invalid(format!(
                        "unsupported security mode for --security: {other:?}"
                    ))))
                }
            };
            InstructionKind::Run {
                command: command(node),
                heredocs: node.heredocs.clone(),
                mounts,
                network,
                security,
            }
        }
        "cmd" => {
            no_flags(node, &upper)?;
            InstructionKind::Cmd(command(node))
        }
        "entrypoint" => {
            no_flags(node, &upper)?;
            InstructionKind::Entrypoint(command(node))
        }
        "shell" => {
            no_flags(node, &upper)?;
            if !node.json {
                return Err(Fail::from(ErrorKind::Invalid(
                    "SHELL requires the arguments to be in JSON form".into(),
                )));
            }
            at_least_one(node, &upper)?;
            InstructionKind::Shell(node.args.clone())
        }
        "label" => {
            no_flags(node, &upper)?;
            at_least_one(node, &upper)?;
            InstructionKind::Label(pairs(node, &upper)?)
        }
        "env" => {
            no_flags(node, &upper)?;
            at_least_one(node, &upper)?;
            InstructionKind::Env(pairs(node, &upper)?)
        }
        "maintainer" => {
            no_flags(node, &upper)?;
            InstructionKind::Maintainer(exactly_one(node, &upper)?)
        }
        "expose" => {
            no_flags(node, &upper)?;
            at_least_one(node, &upper)?;
            InstructionKind::Expose(node.args.clone())
        }
        "add" | "copy" => {
            let is_copy = name == "copy";
            let spec: &[(&'static str, FlagType)] = if is_copy {
                &[
                    ("from", Value),
                    ("chown", Value),
                    ("chmod", Value),
                    ("link", Bool),
                    ("parents", Bool),
                    ("exclude", List),
                ]
            } else {
                &[
                    ("chown", Value),
                    ("chmod", Value),
                    ("link", Bool),
                    ("exclude", List),
                    ("checksum", Value),
                    ("keep-git-dir", Bool),
                    ("unpack", Bool),
                ]
            };
            let flags = Flags::parse(&upper, &node.flags, spec)?;
            let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty())
            else {
                return Err(Fail::from(ErrorKind::Invalid(format!(
                    "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                ))));
            };
            if heredoc_from_word(dest).is_some() {
                return Err(Fail::from(ErrorKind::Invalid(format!(
                    "{upper} cannot accept a heredoc as a destination"
                ))));
            }
            // Heredoc markers among the sources are inline files, not paths.
            let (inline, paths): (Vec<&String>, Vec<&String>) =
                sources.iter().partition(|s| heredoc_from_word(s).is_some());
            let heredocs = if inline.is_empty() { Vec::new() } else { node.heredocs.clone() };
            let copy = CopySource {
                sources: paths.into_iter().cloned().collect(),
                dest: dest.clone(),
                heredocs,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                parents: flags.bool("parents").unwrap_or(false),
                exclude: flags.list("exclude"),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
                unpack: flags.bool("unpack"),
            };
            if is_copy {
                InstructionKind::Copy(copy)
            } else {
                InstructionKind::Add(copy)
            }
        }
        "volume" => {
            no_flags(node, &upper)?;
            at_least_one(node, &upper)?;
            if node.args.iter().any(|v| v.trim().is_empty()) {
                return Err(Fail::from(ErrorKind::Invalid(
                    "VOLUME specified can not be an empty string".into(),
                )));
            }
            InstructionKind::Volume(node.args.clone())
        }
        "user" => {
            no_flags(node, &upper)?;
            InstructionKind::User(exactly_one(node, &upper)?)
        }
        "workdir" => {
            no_flags(node, &upper)?;
            InstructionKind::Workdir(exactly_one(node, &upper)?)
        }
        "arg" => {
            no_flags(node, &upper)?;
            at_least_one(node, &upper)?;
            let args = node
                .args
                .iter()
                .map(|word| match word.split_once('=') {
                    Some(("", _)) => Err(ErrorKind::Invalid("ARG names can not be blank".into())),
                    Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                    None => Ok((word.clone(), None)),
                })
                .collect::<Result<_, _>>()?;
            InstructionKind::Arg(args)
        }
        "stopsignal" => {
            // BuildKit does not read STOPSIGNAL's flags, so neither do we.
            InstructionKind::StopSignal(exactly_one(node, &upper)?)
        }
        "healthcheck" => healthcheck(node)?,
        "onbuild" => {
            let Some(sub) = &node.sub else {
                return Err(Fail::from(ErrorKind::Invalid(
                    "ONBUILD requires at least one argument".into(),
                )));
            };
            match sub.name().as_str() {
                "onbuild" => {
                    return Err(Fail::from(ErrorKind::Invalid(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    )))
                }
                "from" | "maintainer" => {
                    return Err(Fail::from(ErrorKind::Invalid(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        sub.keyword.to_uppercase()
                    ))))
                }
                _ => {}
            }
            let inner = typed(sub).map_err(|e| Fail::from(e.kind))?;
            InstructionKind::Onbuild(Box::new(inner))
        }
        _ => {
            return Err(Fail::from(ErrorKind::UnknownInstruction {
                keyword: node.keyword.clone(),
                suggestion: suggest_keyword(&node.keyword).map(str::to_string),
            }))
        }
    })
}

fn healthcheck(node: &Node) -> Result<InstructionKind, Fail> {
    use FlagType::Value;
    let flags = Flags::parse(
        "HEALTHCHECK",
        &node.flags,
        &[
            ("interval", Value),
            ("timeout", Value),
            ("start-period", Value),
            ("start-interval", Value),
            ("retries", Value),
        ],
    )?;
    let Some(kind) = node.args.first() else {
        return Err(Fail::from(ErrorKind::Invalid(
            "HEALTHCHECK requires at least one argument".into(),
        )));
    };
    match kind.to_uppercase().as_str() {
        "NONE" => {
            if node.args.len() > 1 {
                return Err(Fail::from(ErrorKind::Invalid(
                    "HEALTHCHECK NONE takes no arguments".into(),
                )));
            }
            Ok(InstructionKind::Healthcheck(HealthCheck::None))
        }
        "CMD" => {
            let rest = &node.args[1..];
            if rest.is_empty() {
                return Err(Fail::from(ErrorKind::Invalid(
                    "Missing command after HEALTHCHECK CMD".into(),
                )));
            }
            let command = if node.json {
                Command::Exec(rest.to_vec())
            } else {
                Command::Shell(rest[0].clone())
            };
            let duration = |name: &'static str| -> Result<Option<Duration>, Fail> {
                flags
                    .string(name)
                    .map(|v| {
                        let d = parse_go_duration(&v)
                            .map_err(|e| ErrorKind::Invalid(format!("--{name}: {e}")))?;
                        if !d.is_zero() && d < Duration::from_millis(1) {
                            return Err(ErrorKind::Invalid(format!(
                                "Interval \"{name}\" cannot be less than 1ms"
                            )));
                        }
                        Ok(d)
                    })
                    .transpose()
                    .map_err(at_flag(name))
            };
            let retries = flags
                .string("retries")
                .map(|v| match v.parse::<i32>() {
                    Ok(n) if n < 0 => {
                        Err(ErrorKind::Invalid(format!("--retries cannot be negative ({n})")))
                    }
                    Ok(n) => Ok(n.unsigned_abs()),
                    Err(_) => Err(ErrorKind::Invalid(format!(
                        "--retries: invalid value {v:?}, expected a whole number"
                    ))),
                })
                .transpose()
                .map_err(at_flag("retries"))?;
            Ok(InstructionKind::Healthcheck(HealthCheck::Cmd {
                command,
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            }))
        }
        other => Err(Fail::from(ErrorKind::Invalid(format!(
            "Unknown type {other:?} in HEALTHCHECK (try CMD)"
        )))),
    }
}
