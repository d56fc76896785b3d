//! The syntax tree: Dockerfile text to one [`Node`] per instruction, exactly as BuildKit's
//! parser builds its AST, with line spans.
//!
//! The driver walks physical lines and keeps the state the grammar cannot: the escape
//! token set by a directive, an open continuation, and heredoc bodies.

use crate::error::{ErrorKind, ParseError, Position, Span};
use crate::grammar::{self, PhysicalLine};
use crate::json_array::{parse_json_array, JsonArray};
use crate::shell::{Lexer, MapEnv};

/// BuildKit's scanner refuses physical lines of this many bytes or more.
const MAX_LINE_BYTES: usize = 65_536;

/// A parser directive from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The key, lower case: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value.
    pub value: String,
    /// The line it is on.
    pub line: usize,
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The file descriptor before `<<` (0 when none).
    pub file_descriptor: u64,
    /// The body, every line with its terminator, as written.
    pub content: String,
    /// `<<-`: leading tabs are stripped from the body and terminator.
    pub chomp: bool,
    /// The name was unquoted, so variables in the body are expanded.
    pub expand: bool,
}

/// A warning that does not stop parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The message.
    pub message: String,
    /// The first line of the instruction.
    pub line: usize,
}

/// One instruction as BuildKit's AST holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`run`, `RUN`, `Run` ...).
    pub keyword: String,
    /// Leading `--flag` words, quotes and escapes removed.
    pub flags: Vec<String>,
    /// Argument nodes. ENV and LABEL hold key, value and separator (`=`, or "" for the
    /// legacy `ENV key value` form) for each pair, as BuildKit's AST does.
    pub args: Vec<String>,
    /// For ONBUILD: the wrapped instruction.
    pub sub: Option<Box<Node>>,
    /// The arguments were in exec (JSON array) form.
    pub json: bool,
    /// The logical line: continuation lines joined with the escape token cut off.
    pub original: String,
    /// Heredocs, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
    /// First physical line (1-based).
    pub start_line: usize,
    /// Last physical line consumed, heredoc bodies included.
    pub end_line: usize,
    /// 1-based column of the keyword on the first line.
    pub column: usize,
}

impl Node {
    /// The keyword in lower case, for dispatch.
    pub fn name(&self) -> String {
        go_lower(&self.keyword)
    }

    /// Where the keyword is.
    pub fn keyword_span(&self) -> Span {
        Span::on_line(self.start_line, self.column, self.keyword.chars().count())
    }

    /// The instruction whose arguments this node carries: the wrapped one for ONBUILD.
    pub fn effective(&self) -> &Node {
        match &self.sub {
            Some(sub) => sub,
            None => self,
        }
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = self.effective();
        matches!(node.name().as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A parsed Dockerfile: directives, instructions and warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxTree {
    /// Directives from the top of the file.
    pub directives: Vec<Directive>,
    /// The escape token in force (`\` unless `# escape=` said otherwise).
    pub escape: char,
    /// The instructions in source order.
    pub nodes: Vec<Node>,
    /// Warnings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

impl SyntaxTree {
    /// The value of a directive, by lower-case name.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives.iter().find(|d| d.name == name).map(|d| d.value.as_str())
    }
}

/// Go's `strings.ToLower`: each character mapped on its own (so no final-sigma rule), and
/// `İ` to a plain `i`, where Rust's `str::to_lowercase` differs.
pub(crate) fn go_lower(s: &str) -> String {
    s.chars().map(|c| c.to_lowercase().next().unwrap_or(c)).collect()
}

/// Physical lines as BuildKit's scanner yields them: each with its `\n`, the last one
/// possibly without.
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next raw line and its number, or an error for an over-long line.
    fn next_line(&mut self) -> Option<Result<(usize, &'a str), ParseError>> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map(|i| i + 1).unwrap_or(self.rest.len());
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        self.number += 1;
        if line.trim_end_matches('\n').len() >= MAX_LINE_BYTES {
            return Some(Err(ParseError::at_line(ErrorKind::LineTooLong, self.number)));
        }
        Some(Ok((self.number, line)))
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

struct DirectiveScanner {
    done: bool,
    found: Vec<Directive>,
}

impl DirectiveScanner {
    fn observe(&mut self, line: &str, number: usize) -> Result<Option<char>, ParseError> {
        if self.done {
            return Ok(None);
        }
        let Some((key, value)) = grammar::directive(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = key.to_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        let span = Span::on_line(number, 1, line.chars().count());
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseError::new(ErrorKind::DuplicateDirective(name), span));
        }
        self.found.push(Directive { name: name.clone(), value: value.to_string(), line: number });
        if name == "escape" {
            return match value {
                "\\" => Ok(Some('\\')),
                "`" => Ok(Some('`')),
                other => Err(ParseError::new(ErrorKind::InvalidEscape(other.to_string()), span)),
            };
        }
        Ok(None)
    }
}

/// Parses Dockerfile text into its syntax tree.
pub fn parse_syntax(source: &str) -> Result<SyntaxTree, ParseError> {
    let mut lines = Lines { rest: source, number: 0 };
    let mut directives = DirectiveScanner { done: false, found: Vec::new() };
    let mut escape = '\\';
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();

    while let Some(next) = lines.next_line() {
        let (number, raw) = next?;
        let mut text = trim_newline(raw);
        if number == 1 {
            text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        }
        let stripped = text.trim_start();
        if let Some(token) = directives.observe(stripped, number)? {
            escape = token;
        }
        let start_line = number;
        let column = text.chars().count() - stripped.chars().count() + 1;
        let (mut line, mut ended) = match grammar::classify_line(stripped, escape) {
            PhysicalLine::Comment | PhysicalLine::Blank => continue,
            PhysicalLine::Continued(kept) => (kept.to_string(), false),
            PhysicalLine::Plain(all) => (all.to_string(), true),
        };
        let mut end_line = number;
        let mut empty_continuation = false;
        while !ended {
            let Some(next) = lines.next_line() else { break };
            let (number, raw) = next?;
            end_line = number;
            match grammar::classify_line(trim_newline(raw), escape) {
                PhysicalLine::Comment => {}
                PhysicalLine::Blank => empty_continuation = true,
                PhysicalLine::Continued(kept) => line.push_str(kept),
                PhysicalLine::Plain(all) => {
                    line.push_str(all);
                    ended = true;
                }
            }
        }
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {line}"),
                line: start_line,
            });
        }

        let span =
            Span { start: Position::new(start_line, column), end: Position::new(end_line, 1) };
        let mut node = node_from_line(&line, escape)
            .map_err(|kind| ParseError::new(kind, span_for_keyword(span, &line)))?;
        node.start_line = start_line;
        node.column = column;

        if node.can_contain_heredoc() && line.contains("<<") {
            for mut heredoc in heredocs_in_line(&line) {
                let mut terminated = false;
                while let Some(next) = lines.next_line() {
                    let (number, raw) = next?;
                    end_line = number;
                    let mut candidate = trim_newline(raw);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(raw);
                }
                if !terminated {
                    let span = Span {
                        start: Position::new(start_line, column),
                        end: Position::new(end_line, 1),
                    };
                    return Err(ParseError::new(ErrorKind::UnterminatedHeredoc, span));
                }
                node.heredocs.push(heredoc);
            }
        }
        node.end_line = end_line;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError::at_line(ErrorKind::NoInstructions, lines.number.max(1)));
    }
    Ok(SyntaxTree { directives: directives.found, escape, nodes, warnings })
}

fn span_for_keyword(span: Span, line: &str) -> Span {
    let keyword_len = line.trim_start().split([' ', '\t']).next().map_or(1, |k| k.chars().count());
    Span {
        start: span.start,
        end: Position::new(span.start.line, span.start.column + keyword_len.max(1)),
    }
}

/// Builds the node for one logical line (no line numbers yet).
fn node_from_line(line: &str, escape: char) -> Result<Node, ErrorKind> {
    let trimmed = line.trim();
    let (keyword, rest) = grammar::keyword_and_rest(trimmed);
    let (args_text, flags) = match rest {
        Some(rest) => extract_builder_flags(rest),
        None => (String::new(), Vec::new()),
    };
    let args_text = args_text.trim();
    let mut node = Node {
        keyword: keyword.to_string(),
        flags,
        args: Vec::new(),
        sub: None,
        json: false,
        original: line.to_string(),
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
        column: 1,
    };
    match go_lower(keyword).as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => {
            (node.args, node.json) = maybe_json(args_text)?;
        }
        "add" | "copy" | "volume" => {
            (node.args, node.json) = maybe_json_list(args_text)?;
        }
        "from" | "expose" => node.args = split_whitespace(args_text),
        "env" => node.args = name_values(args_text, "ENV", escape)?,
        "label" => node.args = name_values(args_text, "LABEL", escape)?,
        "arg" => node.args = grammar::words(args_text, escape),
        "healthcheck" => (node.args, node.json) = health_config(args_text)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !args_text.is_empty() {
                node.args.push(args_text.to_string());
            }
        }
        "onbuild" => {
            if !args_text.is_empty() {
                node.sub = Some(Box::new(node_from_line(args_text, escape)?));
            }
        }
        // Unknown keywords are not an error at this level: BuildKit keeps them with one
        // empty argument, and the instruction layer reports them.
        _ => node.args.push(String::new()),
    }
    Ok(node)
}

/// Go's `unicode.IsSpace` applied to a single byte widened to a rune.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xA0)
}

/// Takes the leading `--flag` words off `line`, returning the rest and the flags.
///
/// Hand-written rather than in the grammar because BuildKit scans this part byte by byte
/// and widens each byte to a character: non-ASCII text in a flag comes out as its UTF-8
/// bytes read as Latin-1 (`é` becomes `Ã©`), and the bytes 0x85 and 0xA0 count as white
/// space even inside a multi-byte character. Matching the reference means doing the same.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    let rest_from = |pos: usize| String::from_utf8_lossy(&b[pos..]).into_owned();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= b.len() {
        let at_end = pos == b.len();
        let ch = if at_end { 0 } else { b[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == b.len() || b[pos + 1] != b'-' {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
        } else if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        // In a word or a quote alike, a backslash takes the next byte as it is, and one at
        // the very end is dropped.
        let mut c = ch;
        if c == b'\\' {
            pos += 1;
            if pos == b.len() {
                continue;
            }
            c = b[pos];
        }
        word.push(char::from(c));
        pos += 1;
    }
    (String::new(), words)
}

/// Splits on runs of `[\t\v\f\r ]`.
fn split_whitespace(text: &str) -> Vec<String> {
    text.split(['\t', '\u{0B}', '\u{0C}', '\r', ' '])
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn maybe_json(text: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    if text.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json_array(text.trim_start()) {
        JsonArray::Strings(v) => Ok((v, true)),
        JsonArray::NotStrings => Err(ErrorKind::NotStringArray),
        JsonArray::Invalid => Ok((vec![text.to_string()], false)),
    }
}

fn maybe_json_list(text: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    match parse_json_array(text.trim_start()) {
        JsonArray::Strings(v) => Ok((v, true)),
        JsonArray::NotStrings => Err(ErrorKind::NotStringArray),
        JsonArray::Invalid => Ok((split_whitespace(text), false)),
    }
}

fn name_values(text: &str, keyword: &str, escape: char) -> Result<Vec<String>, ErrorKind> {
    let words = grammar::words(text, escape);
    let Some(first) = words.first() else { return Ok(Vec::new()) };
    if !first.contains('=') {
        let mut parts = text.splitn(2, ['\t', '\u{0B}', '\u{0C}', '\r', ' ']);
        let key = parts.next().unwrap_or_default();
        let value =
            parts.next().map(|v| v.trim_start_matches(['\t', '\u{0B}', '\u{0C}', '\r', ' ']));
        return match value {
            Some(value) => Ok(vec![key.to_string(), value.to_string(), String::new()]),
            None => Err(ErrorKind::MissingValue(keyword.to_string())),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals(word.clone()));
        };
        out.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn health_config(text: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    let b = text.as_bytes();
    let sep = b.iter().position(|&c| is_space_byte(c)).unwrap_or(b.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = b[sep..].iter().position(|&c| !is_space_byte(c)).map_or(b.len(), |i| sep + i);
    let kind = String::from_utf8_lossy(&b[..sep]).into_owned();
    let cmd = String::from_utf8_lossy(&b[next..]).into_owned();
    let (args, json) = maybe_json(&cmd)?;
    let mut out = vec![kind];
    out.extend(args);
    Ok((out, json))
}

/// The heredocs a logical line opens, by BuildKit's rules: the line is split into words
/// with quotes and escapes kept, and each word of the form `[fd]<<[-]NAME` opens one.
fn heredocs_in_line(line: &str) -> Vec<Heredoc> {
    let mut lexer = Lexer::new('\\');
    lexer.raw_quotes = true;
    lexer.raw_escapes = true;
    lexer.skip_unset_env = true;
    let empty = MapEnv::default();
    let Ok(words) = lexer.process_words(line, &empty) else { return Vec::new() };
    words.iter().filter_map(|w| heredoc_from_word(w)).collect()
}

pub(crate) fn heredoc_from_word(word: &str) -> Option<Heredoc> {
    let (fd, chomp, rest) = grammar::heredoc_marker(word)?;
    if rest.is_empty() {
        return None;
    }
    let file_descriptor = if fd.is_empty() { 0 } else { fd.parse().ok()? };
    let mut lexer = Lexer::new('\\');
    lexer.skip_unset_env = true;
    let empty = MapEnv::default();
    let words = lexer.process_words(rest, &empty).ok()?;
    let [name] = words.as_slice() else { return None };
    lexer.raw_quotes = true;
    let raw = lexer.process_words(rest, &empty).ok()?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = raw.first().is_some_and(|r| quotes(r) == quotes(name));
    Some(Heredoc { name: name.clone(), file_descriptor, content: String::new(), chomp, expand })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_taken_bytewise() {
        let (rest, flags) = extract_builder_flags("--chown=é --x=\"a b\" -- --not a");
        assert_eq!(flags, ["--chown=Ã©", "--x=a b"]);
        assert_eq!(rest, " --not a");
    }

    #[test]
    fn line_numbers() {
        let tree =
            parse_syntax("# escape=\\\n\nFROM a\n\nRUN a \\\n\n  b\nCOPY <<EOF /x\nhi\nEOF\n")
                .unwrap();
        let spans: Vec<_> = tree.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
        assert_eq!(spans, [(3, 3), (5, 7), (8, 10)]);
        assert_eq!(tree.warnings.len(), 1);
        assert_eq!(tree.nodes[2].heredocs[0].content, "hi\n");
    }
}
