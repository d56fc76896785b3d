//! Output formats of `rbuild parse`: BuildKit's AST dump and the reference parser's
//! records.

use serde::Serialize;

use crate::syntax::{Node, SyntaxTree};

/// Go's `strconv.Quote`: double-quoted, with Go's escapes, printable characters kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII
/// space. Rust has no general-category test, so this keeps what is not a control, format,
/// separator, surrogate, private-use or unassigned character, using the few properties the
/// standard library has plus the separator and format characters Go treats as unprintable.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let cp = c as u32;
    // Format (Cf) characters that occur in practice, and the private-use areas.
    let format = matches!(cp, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0x110BD | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(cp, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let noncharacter = (cp & 0xFFFE) == 0xFFFE || (0xFDD0..=0xFDEF).contains(&cp);
    !(format || private || noncharacter)
}

/// Renders one node as BuildKit's `Node.Dump()` does.
fn dump_node(node: &Node, out: &mut String) {
    out.push_str(&node.name());
    if !node.flags.is_empty() {
        out.push_str(" [");
        let quoted: Vec<String> = node.flags.iter().map(|f| go_quote(f)).collect();
        out.push_str(&quoted.join(" "));
        out.push(']');
    }
    if let Some(sub) = &node.sub {
        out.push_str(" (");
        dump_node(sub, out);
        out.push(')');
    }
    for arg in &node.args {
        out.push(' ');
        out.push_str(&go_quote(arg));
    }
}

/// BuildKit's AST dump: one `(keyword ["flags"] "arg" ...)` line per instruction.
pub fn dump(tree: &SyntaxTree) -> String {
    let mut out = String::new();
    for node in &tree.nodes {
        out.push('(');
        dump_node(node, &mut out);
        out.push_str(")\n");
    }
    out
}

/// A heredoc in a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecordHeredoc {
    /// Terminator word.
    pub name: String,
    /// File descriptor.
    pub file_descriptor: u64,
    /// Body text.
    pub content: String,
}

/// One instruction in the record format of the reference parser (`dockerfile` on PyPI,
/// which wraps BuildKit's parser): the `--format json` output of `rbuild parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Record {
    /// The keyword as written (`null` for the empty instruction a lone escape token makes,
    /// as the reference reports it).
    pub cmd: Option<String>,
    /// For ONBUILD: the wrapped keyword as written.
    pub sub_cmd: Option<String>,
    /// Exec (JSON) form.
    pub json: bool,
    /// The logical line, followed by heredoc bodies and terminators when there are any
    /// (`null` when empty, as the reference reports it).
    pub original: Option<String>,
    /// First line.
    pub start_line: usize,
    /// Last line.
    pub end_line: usize,
    /// Flags of the instruction (for ONBUILD: of the ONBUILD itself).
    pub flags: Vec<String>,
    /// Argument values; ENV and LABEL give key, value pairs without separators.
    pub value: Vec<String>,
    /// Heredocs (for ONBUILD: those of the wrapped instruction, which are none).
    pub heredocs: Vec<RecordHeredoc>,
}

impl Record {
    /// The record for one node.
    pub fn from_node(node: &Node) -> Self {
        let inner = node.effective();
        let value = if inner.sub.is_some() {
            // `ONBUILD ONBUILD x`: the reference lists the wrapper node holding the inner
            // instruction, whose own value is empty.
            vec![String::new()]
        } else if matches!(inner.name().as_str(), "env" | "label") {
            inner.args.chunks(3).flat_map(|c| c.iter().take(2).cloned()).collect()
        } else {
            inner.args.clone()
        };
        // The reference reports the heredocs of the wrapped instruction, which BuildKit
        // attaches to the ONBUILD node instead, so ONBUILD shows none.
        let heredocs: Vec<RecordHeredoc> = if node.sub.is_some() {
            Vec::new()
        } else {
            node.heredocs
                .iter()
                .map(|h| RecordHeredoc {
                    name: h.name.clone(),
                    file_descriptor: h.file_descriptor,
                    content: h.content.clone(),
                })
                .collect()
        };
        let mut original = node.original.clone();
        if !heredocs.is_empty() {
            original.push('\n');
            for h in &heredocs {
                original.push_str(&h.content);
                original.push_str(&h.name);
                original.push('\n');
            }
        }
        Record {
            cmd: Some(node.keyword.clone()).filter(|k| !k.is_empty()),
            sub_cmd: node.sub.as_ref().map(|s| s.keyword.clone()),
            json: inner.json,
            original: Some(original).filter(|o| !o.is_empty()),
            start_line: node.start_line,
            end_line: node.end_line,
            flags: node.flags.clone(),
            value,
            heredocs,
        }
    }
}

/// The records of every instruction.
pub fn records(tree: &SyntaxTree) -> Vec<Record> {
    tree.nodes.iter().map(Record::from_node).collect()
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\\\"b"), r#""a\\\"b""#);
        assert_eq!(go_quote("\t\0\u{7f}"), r#""\t\x00\x7f""#);
        assert_eq!(go_quote("♥ ☃ 한"), "\"♥ ☃ 한\"");
        assert_eq!(go_quote("\u{a0}\u{ad}\u{2028}"), r#""\u00a0\u00ad\u2028""#);
        assert_eq!(go_quote("\u{e0001}"), r#""\U000e0001""#);
    }
}
