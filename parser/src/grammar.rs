//! The pest grammar (`dockerfile.pest`) and small typed helpers around it.
//!
//! Every function here runs one grammar rule over one piece of text and turns the pairs
//! into plain Rust values; the driver in [`crate::syntax`] decides which rule to run when.

use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;

/// The derived parser for `dockerfile.pest`.
#[derive(Parser)]
#[grammar = "dockerfile.pest"]
pub(crate) struct DockerfileGrammar;

/// What one physical line is, as the grammar classifies it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PhysicalLine<'a> {
    /// First non-blank character is `#`.
    Comment,
    /// Nothing but white space.
    Blank,
    /// Ends in the escape token: the text that stays once the token and blanks are cut.
    Continued(&'a str),
    /// Any other line.
    Plain(&'a str),
}

/// Classifies a physical line (its terminator already stripped) for an escape token.
pub(crate) fn classify_line(line: &str, escape: char) -> PhysicalLine<'_> {
    // Most lines are plain instruction text. When the line does not end in the escape
    // token (blanks aside) and is not a comment or blank, no rule but `plain_line` can
    // match, so the grammar is not run over it: this keeps parsing fast.
    let first = line.trim_start_matches(char::is_whitespace).chars().next();
    let ends_in_escape = line.trim_end_matches([' ', '\t']).ends_with(escape);
    if first.is_some_and(|c| c != '#') && !ends_in_escape {
        return PhysicalLine::Plain(line);
    }
    let rule = if escape == '`' { Rule::physical_bt } else { Rule::physical_bs };
    // The grammar's last alternative (`plain_line = ANY*`) accepts every input, so a
    // failure cannot happen; treating one as a plain line keeps this total all the same.
    let Some(kind) = DockerfileGrammar::parse(rule, line)
        .ok()
        .and_then(|mut pairs| pairs.next())
        .and_then(|top| top.into_inner().next())
    else {
        return PhysicalLine::Plain(line);
    };
    match kind.as_rule() {
        Rule::comment_line => PhysicalLine::Comment,
        Rule::blank_line => PhysicalLine::Blank,
        Rule::continued_bs | Rule::continued_bt => {
            let kept = kind.into_inner().next().map(|p| p.as_str()).unwrap_or("");
            // An escape token right before the final one escapes it: no continuation.
            if kept.ends_with(escape) {
                PhysicalLine::Plain(line)
            } else {
                PhysicalLine::Continued(kept)
            }
        }
        _ => PhysicalLine::Plain(line),
    }
}

/// A `# key=value` directive line: the key as written and the value.
pub(crate) fn directive(line: &str) -> Option<(&str, &str)> {
    let top = DockerfileGrammar::parse(Rule::directive, line).ok()?.next()?;
    let mut inner = top.into_inner();
    let key = inner.next()?.as_str();
    let raw = inner.next()?.as_str();
    let is_blank = |c: char| c == ' ' || c == '\t';
    let trimmed = raw.trim_matches(is_blank);
    let value = if trimmed.is_empty() {
        // `(.+?)` needs one character: with only blanks left, it takes the last one.
        let last = raw.char_indices().last().map(|(i, _)| i).unwrap_or(0);
        &raw[last..]
    } else {
        trimmed
    };
    Some((key, value))
}

/// Splits a trimmed logical line into its keyword and the rest after the first run of
/// `[\t\v\f\r ]`.
pub(crate) fn keyword_and_rest(line: &str) -> (&str, Option<&str>) {
    let parsed = DockerfileGrammar::parse(Rule::instruction_head, line)
        .ok()
        .and_then(|mut pairs| pairs.next());
    let Some(top) = parsed else {
        // Only the empty line fails (`keyword` needs one character); the driver never
        // passes one, and an empty keyword is the faithful answer for it.
        return (line, None);
    };
    let mut keyword = "";
    let mut rest = None;
    for part in top.into_inner() {
        match part.as_rule() {
            Rule::keyword => keyword = part.as_str(),
            Rule::arg_sep => rest = Some(&line[part.as_span().end()..]),
            _ => {}
        }
    }
    (keyword, rest)
}

/// Splits ENV, LABEL and ARG arguments into words, keeping quotes and escapes.
pub(crate) fn words(text: &str, escape: char) -> Vec<String> {
    let rule = if escape == '`' { Rule::words_bt } else { Rule::words_bs };
    let Some(top) = DockerfileGrammar::parse(rule, text).ok().and_then(|mut p| p.next()) else {
        return Vec::new();
    };
    top.into_inner()
        .filter(|p| matches!(p.as_rule(), Rule::word_bs | Rule::word_bt))
        .filter_map(word_text)
        .collect()
}

fn word_text(word: Pair<'_, Rule>) -> Option<String> {
    let text = word.as_str();
    let dropped_escape = word
        .into_inner()
        .any(|part| matches!(part.as_rule(), Rule::trailing_escape_bs | Rule::trailing_escape_bt));
    let text = if dropped_escape {
        // The dropped escape token is the last character of the whole input.
        let mut chars = text.chars();
        chars.next_back();
        chars.as_str()
    } else {
        text
    };
    (!text.is_empty()).then(|| text.to_string())
}

/// A heredoc marker word split into file descriptor digits, chomp flag and name text.
pub(crate) fn heredoc_marker(word: &str) -> Option<(&str, bool, &str)> {
    let top = DockerfileGrammar::parse(Rule::heredoc_marker, word).ok()?.next()?;
    let mut fd = "";
    let mut chomp = false;
    let mut name = "";
    for part in top.into_inner() {
        match part.as_rule() {
            Rule::heredoc_fd => fd = part.as_str(),
            Rule::heredoc_chomp => chomp = true,
            Rule::heredoc_name => name = part.as_str(),
            _ => {}
        }
    }
    Some((fd, chomp, name))
}

/// Splits a CSV record (the value of `--mount` and similar flags) into fields.
pub(crate) fn csv_fields(text: &str) -> Option<Vec<String>> {
    let top = DockerfileGrammar::parse(Rule::csv_line, text).ok()?.next()?;
    Some(
        top.into_inner()
            .filter_map(|field| field.into_inner().next())
            .map(|value| match value.as_rule() {
                Rule::csv_quoted => value.into_inner().as_str().replace("\"\"", "\""),
                _ => value.as_str().to_string(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(classify_line("a \\  ", '\\'), PhysicalLine::Continued("a "));
        assert_eq!(classify_line("\\", '\\'), PhysicalLine::Continued(""));
        assert_eq!(classify_line("a\\\\", '\\'), PhysicalLine::Plain("a\\\\"));
        assert_eq!(classify_line("\\x\\", '\\'), PhysicalLine::Continued("\\x"));
        assert_eq!(classify_line("a`", '`'), PhysicalLine::Continued("a"));
        assert_eq!(classify_line("a\\", '`'), PhysicalLine::Plain("a\\"));
        assert_eq!(classify_line("  # x \\", '\\'), PhysicalLine::Comment);
        assert_eq!(classify_line(" \t ", '\\'), PhysicalLine::Blank);
    }

    #[test]
    fn directive_values() {
        assert_eq!(directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(directive("#Syntax = x/y  "), Some(("Syntax", "x/y")));
        assert_eq!(directive("# escape=  "), Some(("escape", " ")));
        assert_eq!(directive("# 1x=y"), None);
        assert_eq!(directive("# x="), None);
    }

    #[test]
    fn env_words() {
        assert_eq!(words("foo bar 'abc xyz'", '\\'), ["foo", "bar", "'abc xyz'"]);
        assert_eq!(words("foo\\ bar", '\\'), ["foo\\ bar"]);
        assert_eq!(words("föo bàr \"âbc xÿz\"", '\\'), ["föo", "bàr", "\"âbc xÿz\""]);
        assert_eq!(words("a\\", '\\'), ["a"]);
        assert_eq!(words("\"a\\", '\\'), ["\"a"]);
        assert_eq!(words("''", '\\'), ["''"]);
    }

    #[test]
    fn csv() {
        assert_eq!(csv_fields("a=b,\"c=d,e\"").unwrap_or_default(), ["a=b", "c=d,e"]);
        assert!(csv_fields("a=\"b").is_none());
    }
}
