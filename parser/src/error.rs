//! Errors with the place they point at.

use std::fmt;

/// A place in the Dockerfile: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// A position at `line`, `column`.
    pub fn new(line: usize, column: usize) -> Self {
        Position { line, column }
    }
}

/// A range of source: from `start` to `end` (inclusive line range; `end.column` is the
/// column just past the last character on the end line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Span {
    /// Where it starts.
    pub start: Position,
    /// Where it ends.
    pub end: Position,
}

impl Span {
    /// A span covering `len` characters from `start` on one line.
    pub fn on_line(line: usize, column: usize, len: usize) -> Self {
        Span { start: Position::new(line, column), end: Position::new(line, column + len.max(1)) }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.start.line, self.start.column)
    }
}

/// What went wrong while reading a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file holds no instruction at all.
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// A parser directive given twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A heredoc whose terminator never came.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    /// Exec form with an element that is not a string.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// `ENV key` or `LABEL key` with no value.
    #[error("{0} must have two arguments")]
    MissingValue(String),
    /// `ENV a=b c`: a word without `=` in the `key=value` form.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// An instruction keyword that does not exist.
    #[error("unknown instruction: {keyword}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        /// The keyword as written.
        keyword: String,
        /// The closest known keyword, if one is close.
        suggestion: Option<String>,
    },
    /// A flag the instruction does not take.
    #[error("unknown flag: --{flag} for {instruction}{}", suggestion.as_ref().map(|s| format!(" (did you mean --{s}?)")).unwrap_or_default())]
    UnknownFlag {
        /// The instruction keyword.
        instruction: String,
        /// The flag name without dashes.
        flag: String,
        /// The instruction's flag closest to it, if one is close.
        suggestion: Option<String>,
    },
    /// A flag or argument value that is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A variable expansion failed.
    #[error("{0}")]
    Shell(String),
    /// A stage graph problem: a cycle, a duplicate or reserved name, a missing stage.
    #[error("{0}")]
    Graph(String),
}

/// An error about a Dockerfile, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where: the line (and column, when known) of the offending text.
    pub span: Span,
}

impl ParseError {
    /// An error of `kind` at `span`.
    pub fn new(kind: ErrorKind, span: Span) -> Self {
        ParseError { kind, span }
    }

    /// An error of `kind` at the start of `line`.
    pub fn at_line(kind: ErrorKind, line: usize) -> Self {
        ParseError { kind, span: Span::on_line(line, 1, 1) }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.span, self.kind)
    }
}

impl std::error::Error for ParseError {}

/// Renders an error the way the CLI shows it: `file:line:col: message`, the offending
/// line, and a caret under the span.
pub fn render_error(file: &str, source: &str, err: &ParseError) -> String {
    let line_no = err.span.start.line.max(1);
    let text = source.split('\n').nth(line_no - 1).unwrap_or("").trim_end_matches('\r');
    let col = err.span.start.column.max(1);
    let width = if err.span.end.line == err.span.start.line {
        err.span.end.column.saturating_sub(col).max(1)
    } else {
        text.chars().count().saturating_sub(col - 1).max(1)
    };
    let gutter = line_no.to_string().len();
    let pad = " ".repeat(gutter);
    // Tabs are kept so the caret lines up under tabbed text in any terminal.
    let lead: String =
        text.chars().take(col - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
    format!(
        "{file}:{line_no}:{col}: {kind}\n{pad} |\n{line_no} | {text}\n{pad} | {lead}{carets}",
        kind = err.kind,
        carets = "^".repeat(width)
    )
}
