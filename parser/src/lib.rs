//! # rbuild-parser
//!
//! Reads Dockerfiles exactly as Docker's own parser (BuildKit's Dockerfile frontend) does,
//! and turns them into something a builder can run.
//!
//! Three representations, each built from the one before:
//!
//! 1. [`SyntaxTree`]: one [`Node`] per instruction with its line span, flags and argument
//!    nodes, the escape token and directives ([`parse_syntax`]). Its [`dump`] is
//!    byte-identical to BuildKit's AST dump, and its [`records`] to the reference parser's.
//! 2. [`Instruction`]s: typed, with validated flags (`RUN --mount`, `COPY --from`,
//!    `HEALTHCHECK --interval` ...) and shell or exec form ([`Dockerfile::from_tree`]).
//! 3. [`StageGraph`]: stages, their bases and the edges between them, global `ARG`s, the
//!    stages a target needs, in build order ([`StageGraph::build`]).
//!
//! The [`checks`] module runs BuildKit's build checks (and, opt-in, hadolint's rules that
//! need no shell parser) over a parsed Dockerfile. The [`dockerignore`] module matches context paths against `.dockerignore` patterns with
//! Docker's semantics. The [`shell`] module is the shell-word lexer used for `$VAR` expansion and word
//! splitting. Nothing here does I/O: the crate takes text and returns values or a
//! [`ParseError`] that says where (line and column) and what.
//!
//! ```
//! let df = rbuild_parser::parse("FROM busybox AS base\nRUN echo hi\nFROM base\nCOPY --from=base /x /y\n")?;
//! let graph = rbuild_parser::StageGraph::build(&df, &Default::default())?;
//! assert_eq!(graph.stages.len(), 2);
//! assert_eq!(graph.order_for(None)?, vec![0, 1]);
//! # Ok::<(), rbuild_parser::ParseError>(())
//! ```
#![deny(missing_docs)]

pub mod checks;
pub mod dockerignore;
mod dump;
mod error;
mod grammar;
mod graph;
mod instructions;
mod json_array;
pub mod shell;
mod suggest;
mod syntax;

pub use dump::{dump, go_quote, records, Record, RecordHeredoc};
pub use error::{render_error, ErrorKind, ParseError, Position, Span};
pub use graph::{BuildArgs, Stage, StageBase, StageGraph};
pub use instructions::{
    Command, CopySource, Dockerfile, HealthCheck, Instruction, InstructionKind, Mount, MountKind,
    NetworkMode, SecurityMode,
};
pub use suggest::suggest_keyword;
pub use syntax::{parse_syntax, Directive, Heredoc, Node, SyntaxTree, Warning};

/// Parses Dockerfile text into typed instructions.
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    Dockerfile::from_tree(parse_syntax(source)?)
}

/// Parses Dockerfile bytes. Invalid UTF-8 is replaced with U+FFFD first: BuildKit keeps
/// such bytes as they are, which only shows in the dump of a file that has them.
pub fn parse_bytes(source: &[u8]) -> Result<Dockerfile, ParseError> {
    parse(&String::from_utf8_lossy(source))
}
