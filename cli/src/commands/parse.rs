//! `rbuild parse`: the parser's view of a Dockerfile, for tools and for debugging.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_parser::{dump, parse_syntax, records, render_error, BuildArgs, Dockerfile, StageGraph};

/// Output formats of `rbuild parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One record per instruction, as BuildKit's parser reports it (cmd, sub_cmd, json,
    /// original, start_line, end_line, flags, value, heredocs).
    Json,
    /// BuildKit's AST dump: one `(keyword ["flags"] "args")` line per instruction.
    Dump,
    /// The stage graph in Graphviz DOT (checks instructions and stages first).
    Dot,
}

/// Arguments of `rbuild parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The Dockerfile to read, or `-` for standard input.
    #[arg(default_value = "Dockerfile")]
    file: PathBuf,

    /// What to print.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// Also check every instruction (flags, arguments) and the stage graph, as a build
    /// would, and fail on the first problem. Always on for `--format dot`.
    #[arg(long)]
    validate: bool,

    /// Set a build argument (`KEY=VALUE`, or `KEY` to take it from the environment), used to
    /// expand global ARGs in FROM lines.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,

    /// With `--format dot`: show only the stages needed to build this stage.
    #[arg(long)]
    target: Option<String>,
}

/// Validated options for one `parse` run.
struct ParseOptions {
    name: String,
    source: String,
    format: Format,
    validate: bool,
    build_args: BuildArgs,
    target: Option<String>,
}

impl ParseOptions {
    fn from_args(args: ParseArgs) -> Result<Self> {
        let (name, bytes) = if args.file.as_os_str() == "-" {
            let buf = rbuild_builder::limits::read_limited(
                std::io::stdin(),
                rbuild_builder::limits::MAX_DOCKERFILE_BYTES,
                std::path::Path::new("standard input"),
            )?;
            ("<stdin>".to_string(), buf)
        } else {
            let bytes = rbuild_builder::limits::read_file_limited(
                &args.file,
                rbuild_builder::limits::MAX_DOCKERFILE_BYTES,
            )
            .with_context(|| format!("reading {}", args.file.display()))?;
            (args.file.display().to_string(), bytes)
        };
        let source = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{name} is not valid UTF-8; invalid bytes are read as U+FFFD");
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        let mut build_args = BuildArgs::new();
        for arg in args.build_args {
            match arg.split_once('=') {
                Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
                None => match std::env::var(&arg) {
                    Ok(v) => build_args.insert(arg, v),
                    Err(_) => continue,
                },
            };
        }
        if args.target.is_some() && args.format != Format::Dot {
            bail!("--target only applies to --format dot");
        }
        Ok(ParseOptions {
            name,
            source,
            format: args.format,
            validate: args.validate || args.format == Format::Dot,
            build_args,
            target: args.target,
        })
    }
}

/// Runs `rbuild parse`.
pub fn run(args: ParseArgs) -> Result<ExitCode> {
    let opts = ParseOptions::from_args(args)?;
    let fail = |err: &rbuild_parser::ParseError| {
        eprintln!("{} {}", crate::human::error_tag(), render_error(&opts.name, &opts.source, err));
        Ok(ExitCode::FAILURE)
    };
    let tree = match parse_syntax(&opts.source) {
        Ok(tree) => tree,
        Err(err) => return fail(&err),
    };
    for warning in &tree.warnings {
        tracing::warn!("{}:{}: {}", opts.name, warning.line, warning.message);
    }
    let mut graph = None;
    if opts.validate {
        let df = match Dockerfile::from_tree(tree.clone()) {
            Ok(df) => df,
            Err(err) => return fail(&err),
        };
        let g = match StageGraph::build(&df, &opts.build_args) {
            Ok(g) => g,
            Err(err) => return fail(&err),
        };
        if let Err(err) = g.order_for(opts.target.as_deref()) {
            return fail(&err);
        }
        graph = Some(g);
    }
    let out = match opts.format {
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(&records(&tree)).context("encoding records")?;
            s.push('\n');
            s
        }
        Format::Dump => dump(&tree),
        Format::Dot => {
            let Some(mut g) = graph else { bail!("internal: the graph was not built") };
            if let Some(target) = opts.target.as_deref() {
                let keep = g.order_for(Some(target)).map_err(|e| anyhow::anyhow!("{e}"))?;
                g.stages.retain(|s| keep.contains(&s.index));
            }
            g.to_dot()
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).context("writing the output")?;
    Ok(ExitCode::SUCCESS)
}
