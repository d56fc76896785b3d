//! Exec-form arguments: a JSON array of strings, read the way BuildKit reads it.
//!
//! Written by hand rather than with `serde_json` because the exact acceptance rules are
//! Go's `encoding/json` decoder's, and they differ in ways that decide between exec form,
//! shell form and an error: only the first JSON value is read (text after the closing `]`
//! is ignored); a lone UTF-16 surrogate in `\u` becomes U+FFFD instead of an error; nesting
//! up to 10,000 levels is valid JSON (needed to tell "not a string array", an error, from
//! "not JSON", which falls back to shell form); and a number too large for an `f64` is a
//! decoding error that also falls back to shell form. The scanner is iterative, so hostile
//! nesting cannot exhaust the stack.

/// What reading a JSON array gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArray {
    /// A JSON array whose elements are all strings.
    Strings(Vec<String>),
    /// Valid JSON, but an element is not a string: an error for the Dockerfile.
    NotStrings,
    /// Not a JSON array: the arguments are in shell form.
    Invalid,
}

const MAX_DEPTH: usize = 10_000;

/// Reads `text` (left-trimmed) as a JSON array.
pub(crate) fn parse_json_array(text: &str) -> JsonArray {
    if !text.starts_with('[') {
        return JsonArray::Invalid;
    }
    let mut scanner = Scanner { bytes: text.as_bytes(), pos: 0, overflow: false };
    match scanner.top_level_array() {
        Some(_) if scanner.overflow => JsonArray::Invalid,
        Some(Some(strings)) => JsonArray::Strings(strings),
        Some(None) => JsonArray::NotStrings,
        None => JsonArray::Invalid,
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// A number did not fit an `f64`: Go reports an unmarshal error after the whole value.
    overflow: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Container {
    Array,
    Object,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Scans the array starting at `pos`. `None`: invalid JSON. `Some(None)`: valid, but
    /// some element is not a string. `Some(Some(v))`: the strings.
    fn top_level_array(&mut self) -> Option<Option<Vec<String>>> {
        let mut stack: Vec<Container> = Vec::new();
        let mut strings = Some(Vec::new());
        // Entering the top-level array.
        self.pos += 1;
        stack.push(Container::Array);
        let mut expect_value_or_close = true;
        loop {
            self.skip_ws();
            let top = *stack.last()?;
            if expect_value_or_close {
                // Just after `[` or `{`: a close is allowed here.
                let close = if top == Container::Array { b']' } else { b'}' };
                if self.eat(close) {
                    stack.pop();
                    if stack.is_empty() {
                        return Some(strings);
                    }
                    expect_value_or_close = false;
                    continue;
                }
            }
            if top == Container::Object {
                // A key and a colon come before each value.
                if self.peek() != Some(b'"') {
                    return None;
                }
                self.string()?;
                self.skip_ws();
                if !self.eat(b':') {
                    return None;
                }
                self.skip_ws();
            }
            // A value.
            let at_top = stack.len() == 1;
            match self.peek()? {
                b'"' => {
                    let s = self.string()?;
                    if at_top {
                        if let Some(v) = strings.as_mut() {
                            v.push(s);
                        }
                    }
                }
                b'[' | b'{' => {
                    if at_top {
                        strings = None;
                    }
                    if stack.len() >= MAX_DEPTH {
                        return None;
                    }
                    let kind = if self.peek() == Some(b'[') {
                        Container::Array
                    } else {
                        Container::Object
                    };
                    self.pos += 1;
                    stack.push(kind);
                    expect_value_or_close = true;
                    continue;
                }
                _ => {
                    self.scalar()?;
                    if at_top {
                        strings = None;
                    }
                }
            }
            // After a value: a comma or the close of the container.
            loop {
                self.skip_ws();
                let top = *stack.last()?;
                let close = if top == Container::Array { b']' } else { b'}' };
                if self.eat(b',') {
                    expect_value_or_close = false;
                    break;
                }
                if self.eat(close) {
                    stack.pop();
                    if stack.is_empty() {
                        return Some(strings);
                    }
                    continue;
                }
                return None;
            }
        }
    }

    fn scalar(&mut self) -> Option<()> {
        for lit in [&b"true"[..], b"false", b"null"] {
            if self.bytes[self.pos..].starts_with(lit) {
                self.pos += lit.len();
                return Some(());
            }
        }
        self.number()
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            self.digits();
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
        if !text.parse::<f64>().is_ok_and(f64::is_finite) {
            self.overflow = true;
        }
        Some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let hex = self.bytes.get(self.pos..self.pos + 4)?;
        let s = std::str::from_utf8(hex).ok()?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(s, 16).ok()
    }

    /// A string at `pos` (which holds `"`), decoded.
    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let b = self.peek()?;
            match b {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            out.push(self.unicode_escape(first));
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {
                    // Copy one UTF-8 character; the input is a `str`, so it is valid.
                    let rest = std::str::from_utf8(&self.bytes[self.pos..]).ok()?;
                    let ch = rest.chars().next()?;
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
    }

    /// Decodes a `\uXXXX` code unit, joining a surrogate pair when a low surrogate escape
    /// follows; anything else that is a surrogate becomes U+FFFD, as Go does.
    fn unicode_escape(&mut self, first: u32) -> char {
        if (0xD800..0xDC00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            if let Some(second) = self.hex4() {
                if (0xDC00..0xE000).contains(&second) {
                    let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    if let Some(ch) = char::from_u32(c) {
                        return ch;
                    }
                }
            }
            self.pos = save;
        }
        char::from_u32(first).unwrap_or('\u{FFFD}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> JsonArray {
        JsonArray::Strings(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn forms() {
        assert_eq!(parse_json_array(r#"["a", "b"]"#), strings(&["a", "b"]));
        assert_eq!(parse_json_array(r#"["a"] junk"#), strings(&["a"]));
        assert_eq!(parse_json_array("[]"), strings(&[]));
        assert_eq!(parse_json_array(r#"["a", 1]"#), JsonArray::NotStrings);
        assert_eq!(parse_json_array(r#"[ "echo", [ "nested json" ] ]"#), JsonArray::NotStrings);
        assert_eq!(parse_json_array(r#"["a", 1e999]"#), JsonArray::Invalid);
        assert_eq!(parse_json_array("['a']"), JsonArray::Invalid);
        assert_eq!(parse_json_array(r#"["a""#), JsonArray::Invalid);
        assert_eq!(parse_json_array(r#"["a",]"#), JsonArray::Invalid);
        assert_eq!(
            parse_json_array(r#"["\u0000", "\ud800x", "\ud83d\ude00"]"#),
            strings(&["\0", "\u{FFFD}x", "😀"])
        );
        assert_eq!(parse_json_array(r#"[{"k": [1, {"z": null}]}]"#), JsonArray::NotStrings);
        let deep = "[".repeat(20_000);
        assert_eq!(parse_json_array(&deep), JsonArray::Invalid);
    }
}
