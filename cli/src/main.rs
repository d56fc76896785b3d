//! `rbuild`: build OCI images from Dockerfiles without a daemon.
//!
//! This binary is the only part of rbuild that prints. Flags are parsed by clap into raw
//! structs, turned into validated options, and handed to the library crates; every error
//! comes back here and is shown with its whole chain.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "rbuild", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a Dockerfile and print its instructions, AST dump or stage graph.
    Parse(commands::parse::ParseArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
