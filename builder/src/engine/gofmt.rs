//! Values printed as Go's `fmt` prints them, for the history entries BuildKit writes with
//! `%q` and `%v` (`CMD ["a" "b"]`, `HEALTHCHECK &{["CMD" "true"] "5s" "0s" "0s" "0s" '\x03'}`).
//! Written here because no crate reproduces Go's formatting rules; only what BuildKit's
//! history texts need.

/// A string as Go's `strconv.Quote` writes it. Go escapes the characters it does not
/// count as printable; Rust's `char::is_control` stands for that test, which differs for
/// a few rare format characters (U+200B and the like), printed as they are here.
pub(super) fn quote(s: &str) -> String {
    let mut q = String::from('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            c => escape_into(&mut q, c),
        }
    }
    q.push('"');
    q
}

/// A list as Go's `%q` prints a `[]string`: `["a" "b"]`.
pub(super) fn quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" "))
}

/// An integer as Go's `%q` prints it: the character of that code point, quoted as
/// `strconv.QuoteRune` quotes it (`'\x05'`, `'A'`); a value that is no code point prints
/// as U+FFFD.
pub(super) fn quote_rune(n: i64) -> String {
    let c = u32::try_from(n).ok().and_then(char::from_u32).unwrap_or('\u{fffd}');
    let mut q = String::from('\'');
    match c {
        '\'' => q.push_str("\\'"),
        c => escape_into(&mut q, c),
    }
    q.push('\'');
    q
}

/// One character inside Go's quotes (the quote characters themselves are the caller's).
fn escape_into(q: &mut String, c: char) {
    match c {
        '\\' => q.push_str("\\\\"),
        '\u{7}' => q.push_str("\\a"),
        '\u{8}' => q.push_str("\\b"),
        '\u{c}' => q.push_str("\\f"),
        '\n' => q.push_str("\\n"),
        '\r' => q.push_str("\\r"),
        '\t' => q.push_str("\\t"),
        '\u{b}' => q.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => q.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() && (c as u32) < 0x10000 => q.push_str(&format!("\\u{:04x}", c as u32)),
        c if c.is_control() => q.push_str(&format!("\\U{:08x}", c as u32)),
        c => q.push(c),
    }
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it: `0s`, `1.5s`,
/// `1m0s`, `1h0m0s`, `250ms`, `3µs`, `40ns`.
pub(super) fn duration(nanos: u64) -> String {
    /// A whole and fractional part: `value / unit` with the fraction's trailing zeros cut.
    fn decimal(value: u64, unit: u64) -> String {
        let (whole, frac) = (value / unit, value % unit);
        if frac == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{frac:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
    const SECOND: u64 = 1_000_000_000;
    match nanos {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", decimal(n, 1_000)),
        n if n < SECOND => format!("{}ms", decimal(n, 1_000_000)),
        n => {
            let seconds = decimal(n % (60 * SECOND), SECOND);
            let minutes = n / (60 * SECOND);
            match minutes {
                0 => format!("{seconds}s"),
                m if m < 60 => format!("{m}m{seconds}s"),
                m => format!("{}h{}m{seconds}s", m / 60, m % 60),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_go_does() {
        assert_eq!(quote("a \"b\"\\\n\u{7}\u{1}é"), r#""a \"b\"\\\n\a\x01é""#);
        assert_eq!(quote_list(&["/bin/sh".into(), "-c".into()]), r#"["/bin/sh" "-c"]"#);
        assert_eq!(quote_rune(0), r"'\x00'");
        assert_eq!(quote_rune(5), r"'\x05'");
        assert_eq!(quote_rune(65), "'A'");
        assert_eq!(quote_rune(39), r"'\''");
        assert_eq!(quote_rune(10), r"'\n'");
        assert_eq!(quote_rune(-1), "'\u{fffd}'");
        assert_eq!(quote_rune(0x110000), "'\u{fffd}'");
    }

    #[test]
    fn durations_as_go_prints_them() {
        let s = 1_000_000_000;
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(5 * s), "5s");
        assert_eq!(duration(60 * s), "1m0s");
        assert_eq!(duration(90 * s), "1m30s");
        assert_eq!(duration(3600 * s), "1h0m0s");
        assert_eq!(duration(3725 * s + s / 2), "1h2m5.5s");
        assert_eq!(duration(1_500_000_000), "1.5s");
        assert_eq!(duration(250_000_000), "250ms");
        assert_eq!(duration(1_500), "1.5µs");
        assert_eq!(duration(40), "40ns");
        assert_eq!(duration(100 * 3600 * s), "100h0m0s");
    }
}
