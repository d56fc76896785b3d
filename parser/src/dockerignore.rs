//! `.dockerignore` files: which paths of a build context the build must not see.
//!
//! The semantics are Docker's (its `patternmatcher` package), which no Rust crate has:
//! gitignore-style crates (`ignore`, `globset`) differ in anchoring (a Docker pattern is
//! always relative to the context root, `foo` never matches `a/foo`), in `*` crossing
//! nothing but one path element, and in how a pattern excludes the children of a matched
//! directory. The rules:
//!
//! - Lines are trimmed; empty lines and lines starting with `#` are skipped. A leading `!`
//!   makes the line an exception (it re-includes what it matches).
//! - Each pattern is cleaned like Go's `filepath.Clean` and loses a leading `/`.
//! - `*` matches any run of characters but `/`, `?` one character but `/`, `[...]` a class,
//!   `\` escapes the next character, and `**` any number of path elements (also none).
//! - A path is excluded when the last pattern that matches it, or one of its parent
//!   directories, is not an exception.

use regex::Regex;

/// One compiled `.dockerignore` line.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern text (without `!`).
    text: String,
    /// An exception (`!pattern`).
    exception: bool,
    regex: Regex,
}

/// Whether a pattern is invalid, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?} on line {line}: {reason}")]
pub struct IgnoreError {
    /// The pattern as written.
    pub pattern: String,
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The compiled patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

/// Cleans a slash-separated path as Go's `path.Clean` does: no empty or `.` elements, `..`
/// resolved lexically (never above the start of a relative path's root for an absolute
/// one), `.` for an empty result.
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Translates one cleaned pattern to an anchored regular expression.
fn to_regex(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    let next = chars.get(i).copied().ok_or("a trailing \\ inside [...]")?;
                    i += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                }
                '[' => re.push_str("\\["),
                c => re.push(c),
            }
            continue;
        }
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                in_class = true;
                re.push('[');
                if chars.get(i) == Some(&'^') || chars.get(i) == Some(&'!') {
                    i += 1;
                    re.push('^');
                }
            }
            '\\' => match chars.get(i) {
                Some(next) => {
                    i += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                }
                None => re.push_str("\\\\"),
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if in_class {
        return Err("an unclosed [".into());
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

/// A single pattern with `.dockerignore` wildcard rules, matched against a whole
/// (cleaned, relative) path: how COPY and ADD sources with wildcards select files.
#[derive(Debug, Clone)]
pub struct Glob {
    regex: Regex,
}

impl Glob {
    /// Compiles a pattern (already cleaned, no leading `/`).
    pub fn new(pattern: &str) -> Result<Self, String> {
        Ok(Glob { regex: to_regex(pattern)? })
    }

    /// Whether `path` matches the whole pattern.
    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

impl IgnoreMatcher {
    /// Reads the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(IgnoreError {
                        pattern: line.to_string(),
                        line: n + 1,
                        reason: "an exception (!) needs a pattern".into(),
                    });
                }
            }
            let mut cleaned = clean_path(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let regex = to_regex(&cleaned).map_err(|reason| IgnoreError {
                pattern: line.to_string(),
                line: n + 1,
                reason,
            })?;
            patterns.push(Pattern { text: cleaned, exception, regex });
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (so an excluded directory may still hold
    /// included files, and must be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// The patterns, as cleaned, each with whether it is an exception.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> {
        self.patterns.iter().map(|p| (p.text.as_str(), p.exception))
    }

    /// Whether the context path `path` (relative, `/`-separated) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean_path(path);
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut excluded = false;
        for p in &self.patterns {
            // An exception can only change an excluded path, and a pattern only an
            // included one.
            if p.exception != excluded {
                continue;
            }
            let mut hit = p.regex.is_match(&path);
            if !hit {
                // Every parent, as BuildKit's MatchesOrParentMatches does: `**/tmp`
                // excludes `x/y/tmp/h` (Docker's older Matches stopped at the pattern's
                // own depth).
                for i in 0..parents.len() {
                    if p.regex.is_match(&parents[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> IgnoreMatcher {
        match IgnoreMatcher::parse(text) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn double_star_excludes_below_any_depth() {
        let ig = m("**/tmp\n");
        assert!(ig.excludes("tmp/h"));
        assert!(ig.excludes("x/y/tmp/h"), "BuildKit checks every parent");
        assert!(!ig.excludes("x/tmpfile"));
    }

    #[test]
    fn clean_like_go() {
        for (a, b) in [
            ("", "."),
            ("a//b/./c/..", "a/b"),
            ("/../x", "/x"),
            ("../a", "../a"),
            ("a/../..", ".."),
            ("./", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean_path(a), b, "{a:?}");
        }
    }

    #[test]
    fn anchored_and_single_element_stars() {
        let i = m("*.md\nbuild\n/dist/\ntmp*/cache");
        assert!(i.excludes("README.md"));
        assert!(!i.excludes("docs/README.md"), "patterns are anchored at the context root");
        assert!(i.excludes("build"));
        assert!(i.excludes("build/x/y"), "children of a matched directory");
        assert!(i.excludes("dist/a"));
        assert!(i.excludes("tmp1/cache/z"));
        assert!(!i.excludes("tmp1/x/cache"));
        assert!(!i.excludes("buildx"));
    }

    #[test]
    fn double_star() {
        let i = m("**/*.log\nvendor/**\n**/node_modules");
        assert!(i.excludes("a.log"));
        assert!(i.excludes("x/y/z.log"));
        assert!(i.excludes("vendor/a/b"));
        assert!(i.excludes("node_modules/p"));
        assert!(i.excludes("a/b/node_modules"));
        assert!(!i.excludes("a/b/node_modules_x"));
    }

    #[test]
    fn exceptions_in_order() {
        let i = m("*.md\n!README.md\nREADME-secret.md");
        assert!(i.excludes("a.md"));
        assert!(!i.excludes("README.md"));
        assert!(i.excludes("README-secret.md"));
        let j = m("!keep\n*");
        assert!(j.excludes("keep"), "the last matching line wins");
        let k = m("docs\n!docs/keep.txt");
        assert!(k.excludes("docs/other"));
        assert!(!k.excludes("docs/keep.txt"));
        assert!(k.has_exceptions());
    }

    #[test]
    fn comments_spaces_classes_escapes() {
        let i = m("# comment\n  spaced  \n\n[ab].txt\n\\*lit\nq?.c\n[!x]y");
        assert!(i.excludes("spaced"));
        assert!(i.excludes("a.txt") && i.excludes("b.txt") && !i.excludes("c.txt"));
        assert!(i.excludes("*lit") && !i.excludes("xlit"));
        assert!(i.excludes("q1.c") && !i.excludes("q/.c"));
        assert!(i.excludes("zy") && !i.excludes("xy"));
        assert!(!i.excludes("# comment"));
        assert!(IgnoreMatcher::parse("[abc").is_err());
        assert!(IgnoreMatcher::parse("!").is_err());
    }

    #[test]
    fn dots_and_regex_characters_are_literal() {
        let i = m("a.b\nc+d\n(e)\n./f/../g");
        assert!(i.excludes("a.b") && !i.excludes("axb"));
        assert!(i.excludes("c+d") && !i.excludes("ccd"));
        assert!(i.excludes("(e)"));
        assert!(i.excludes("g"));
    }
}
