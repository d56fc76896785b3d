//! The shell-word lexer: quote removal, `$VAR` and `${VAR...}` expansion and word
//! splitting, with BuildKit's rules.
//!
//! Written by hand: expansion interleaves scanning with environment look-ups and nested
//! words (`${A:-${B}}`), which no lexer crate models, and the exact semantics (which
//! escapes count inside double quotes, what is an error) are BuildKit's own.
//!
//! ```
//! use rbuild_parser::shell::{Lexer, MapEnv};
//! let env = MapEnv::from_pairs([("NAME", "world")]);
//! let lexer = Lexer::new('\\');
//! assert_eq!(lexer.process_word("hello \"${NAME}\"", &env).unwrap(), "hello world");
//! assert_eq!(lexer.process_words("a 'b c' ${NAME:-x}", &env).unwrap(), ["a", "b c", "world"]);
//! ```

use std::collections::HashMap;

use regex::Regex;

/// How deep `${...}` may nest; deeper input is refused rather than exhausting the stack.
const MAX_NESTING: usize = 64;

/// An expansion error: bad substitution syntax, an unterminated quote, or a `${X?msg}`
/// whose variable is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process \"{word}\": {reason}")]
pub struct ShellError {
    /// The word being processed.
    pub word: String,
    /// What went wrong.
    pub reason: String,
}

/// Variables visible to an expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<&str>;
}

/// An [`Env`] backed by a map, matching names exactly (Unix) or ignoring ASCII case
/// (Windows, where `$pwd` is `$PWD`).
#[derive(Debug, Clone, Default)]
pub struct MapEnv {
    vars: HashMap<String, String>,
    case_insensitive: bool,
}

impl MapEnv {
    /// An environment from name/value pairs; later pairs win.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        MapEnv {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            case_insensitive: false,
        }
    }

    /// Matches names without regard to case, as on Windows.
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = true;
        self
    }

    /// Sets one variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }
}

impl Env for MapEnv {
    fn lookup(&self, name: &str) -> Option<&str> {
        if let Some(v) = self.vars.get(name) {
            return Some(v);
        }
        if self.case_insensitive {
            let upper = name.to_uppercase();
            return self
                .vars
                .iter()
                .find(|(k, _)| k.to_uppercase() == upper)
                .map(|(_, v)| v.as_str());
        }
        None
    }
}

/// Options and escape token for expansion.
#[derive(Debug, Clone)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output instead of removing them.
    pub raw_quotes: bool,
    /// Keep escape tokens in the output instead of removing them.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave `$VAR` of unset variables as written instead of expanding to "".
    pub skip_unset_env: bool,
}

impl Lexer {
    /// A lexer with the given escape token (`\` or `` ` ``) and default options.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` into one string, without word splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.run(word, env).map(|(s, _)| s)
    }

    /// Expands `word` and splits the result into words: white space in the source and in
    /// the values of unquoted expansions separates words; empty words are dropped.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.run(word, env).map(|(_, w)| w)
    }

    fn run(&self, word: &str, env: &dyn Env) -> Result<(String, Vec<String>), ShellError> {
        let mut chars: Vec<char> = word.chars().collect();
        // Go's text/scanner skips a byte-order mark at the very start.
        if chars.first() == Some(&'\u{FEFF}') {
            chars.remove(0);
        }
        let mut sw =
            ShellWord { lex: self, env, chars, pos: 0, raw_escapes: self.raw_escapes, depth: 0 };
        sw.process_stop_on(None, self.raw_escapes)
            .map_err(|reason| ShellError { word: word.to_string(), reason })
    }
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct ShellWord<'a> {
    lex: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    depth: usize,
}

type Res<T> = Result<T, String>;

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err("substitutions nested too deeply".into());
        }
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let quotes = !self.lex.skip_process_quotes;
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
            } else if quotes && ch == '\'' {
                let tmp = self.process_single_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else if quotes && ch == '"' {
                let tmp = self.process_double_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else {
                self.pos += 1;
                let mut ch = ch;
                if ch == self.lex.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    match self.next() {
                        None => break,
                        Some(next) => ch = next,
                    }
                    words.add_raw_char(ch);
                } else {
                    words.add_char(ch);
                }
                result.push(ch);
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                                self.pos += 1;
                                ch = n;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.pos += 1; // the `$`
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.env.lookup(&name) {
                Some(v) => v.to_string(),
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the `{`
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err("unsupported modifier () in substitution".into());
        };
        match ch {
            '}' => Ok(match self.env.lookup(&name) {
                Some(v) => v.to_string(),
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut modifier = ch.to_string();
                let mut ch = ch;
                let null_is_unset = ch == ':';
                if null_is_unset {
                    match self.next() {
                        Some(c) => {
                            ch = c;
                            modifier.push(c);
                        }
                        None => return Err("syntax error: missing '}'".into()),
                    }
                }
                let raw = ch == '#' || ch == '%';
                let word = self.sub_word('}', raw, "syntax error: missing '}'")?;
                let value = self.env.lookup(&name).map(str::to_string);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty_or_unset = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
                match ch {
                    '-' => Ok(if empty_or_unset { word } else { value.unwrap_or_default() }),
                    '+' => Ok(if empty_or_unset { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() { "is not allowed to be unset" } else { &word }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() { "is not allowed to be empty" } else { &word }
                        )),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' if !null_is_unset => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(ch) {
                            Some(p) => (true, p.to_string()),
                            None => (false, word),
                        };
                        if ch == '%' {
                            trim_suffix(&pattern, &value, greedy)
                        } else {
                            trim_prefix(&pattern, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.pos += 1;
                }
                let pattern = self.sub_word('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.sub_word('}', true, "syntax error: missing '}'")?;
                let value = self.env.lookup(&name).map(str::to_string);
                let Some(value) = value.or_else(|| (!self.lex.skip_unset_env).then(String::new))
                else {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                };
                let re = shell_pattern_regex(&pattern, true, false)?;
                if replace_all {
                    Ok(re.replace_all(&value, regex::NoExpand(&replacement)).into_owned())
                } else {
                    Ok(re.replace(&value, regex::NoExpand(&replacement)).into_owned())
                }
            }
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }

    /// The word inside `${...}` up to `stop`, expanded; running out of input is reported
    /// as `missing`.
    fn sub_word(&mut self, stop: char, raw_escapes: bool, missing: &str) -> Res<String> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(missing.to_string()),
            Err(e) => Err(e),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_go_digit(*c)) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !is_go_letter(ch) && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }
}

/// Go's `unicode.IsDigit` is the Unicode category Nd. Rust's standard library has no Nd
/// test, so outside ASCII this accepts every numeric character (Nd, Nl, No): a superset
/// that only differs for characters like `²` in variable names.
fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// Go's `unicode.IsLetter` (categories L*); Rust's `is_alphabetic` also admits a few
/// letter-like marks, which do not occur in variable names in practice.
fn is_go_letter(c: char) -> bool {
    c.is_alphabetic()
}

/// Converts a shell wildcard pattern (`*`, `?`, `\`-escapes; no bracket expressions) into
/// a regular expression.
fn shell_pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> Res<Regex> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut chars = pattern.chars().peekable();
    while let Some(tok) = chars.next() {
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => {
                        let shown = other.map(String::from).unwrap_or_default();
                        return Err(format!("invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'"));
                    }
                }
            }
            _ => {
                let mut buf = [0u8; 4];
                out.push_str(&regex::escape(tok.encode_utf8(&mut buf)));
            }
        }
    }
    Regex::new(&out).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Res<String> {
    let re = shell_pattern_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern without splitting its escapes (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let out_idx = last - i;
        if chars[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = chars[i + 1];
            i += 2;
        } else {
            out[out_idx] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Res<String> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_cases() {
        let env = MapEnv::from_pairs([("FOO", "xxx"), ("BAR", ""), ("ARG", "x")]);
        let lex = Lexer::new('\\');
        let w = |s: &str| lex.process_word(s, &env);
        assert_eq!(w("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}").unwrap(), "xxx bbb ccc");
        assert_eq!(w("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}").unwrap(), "aaa bbb ");
        assert_eq!(w("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}").unwrap(), "aaa  ");
        assert!(w("${BAR:?message here$ARG}").unwrap_err().reason.contains("message herex"));
        assert_eq!(w("${BAR?message here$ARG}").unwrap(), "");
        assert!(w("${BAZ?message here$ARG}").is_err());
        let env = MapEnv::from_pairs([("X", "abcabc"), ("P", "a/b/c")]);
        let w = |s: &str| lex.process_word(s, &env);
        assert_eq!(w("${X#*b}").unwrap(), "cabc");
        assert_eq!(w("${X##*b}").unwrap(), "c");
        assert_eq!(w("${X%b*}").unwrap(), "abca");
        assert_eq!(w("${X%%b*}").unwrap(), "a");
        assert_eq!(w("${X/b/_}").unwrap(), "a_cabc");
        assert_eq!(w("${X//b/_}").unwrap(), "a_ca_c");
        assert_eq!(w("${P//\\//-}").unwrap(), "a-b-c");
        assert!(w("${X:#a}").is_err());
        assert!(w("${X=a}").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let lex = Lexer::new('\\');
        let word = "${A:-".repeat(10_000);
        assert!(lex.process_word(&word, &MapEnv::default()).is_err());
    }
}

#[cfg(test)]
mod escape_token_tests {
    use super::*;

    #[test]
    fn backtick_escape_and_windows_names() {
        let env = MapEnv::from_pairs([("Path", "C:\\bin")]).case_insensitive();
        let lex = Lexer::new('`');
        assert_eq!(lex.process_word("a`$b", &env).unwrap(), "a$b");
        assert_eq!(lex.process_word("C:\\dir\\$PATH", &env).unwrap(), "C:\\dir\\C:\\bin");
        assert_eq!(lex.process_word("\"q`\"x\"", &env).unwrap(), "q\"x");
        assert_eq!(lex.process_words("a` b c", &env).unwrap(), ["a b", "c"]);
    }
}
