//! Docker-style human-readable sizes and times.

/// Colours of [`paint`].
#[derive(Debug, Clone, Copy)]
pub enum Colour {
    /// Errors and failed steps.
    Red = 31,
    /// Finished steps.
    Green = 32,
    /// Warnings.
    Yellow = 33,
}

/// Whether standard error takes colour: a terminal, `NO_COLOR` unset or empty
/// (no-color.org), and `TERM` not `dumb`.
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
        && std::io::stderr().is_terminal()
}

/// `text` in `colour` when standard error takes colour (see [`colour_on_stderr`]), else
/// as it is.
pub fn paint(text: &str, colour: Colour) -> String {
    if colour_on_stderr() {
        format!("\x1b[{}m{text}\x1b[0m", colour as u8)
    } else {
        text.to_string()
    }
}

/// `error:`, in red where standard error takes colour.
pub fn error_tag() -> String {
    paint("error:", Colour::Red)
}

/// A size the way Docker prints it: decimal units, three significant digits (`4.26MB`).
pub fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[unit])
}

pub use rbuild_builder::time::{parse_rfc3339, utc};

/// A time as docker's `--since`, `--until` and `--filter until=` take it: RFC 3339, Unix
/// seconds (`1700000000`, a fraction allowed), or a Go duration back from now (`10m`,
/// `1h30m`, `24h`). Unix seconds.
pub fn time_arg(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    if let Some(secs) = parse_rfc3339(text) {
        return Some(secs);
    }
    if let Ok(secs) = text.split('.').next().unwrap_or("").parse::<i64>() {
        if text.split('.').nth(1).is_none_or(|f| f.chars().all(|c| c.is_ascii_digit())) {
            return Some(secs);
        }
    }
    let mut total = 0i64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len =
            rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let unit = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[unit_len..];
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(i64::try_from(now).ok()? - total)
}

/// How long ago `created` (RFC 3339) was, as Docker says it: `2 hours ago`.
pub fn ago(created: Option<&str>) -> String {
    match created.and_then(parse_rfc3339) {
        Some(_) => format!("{} ago", since(created)),
        None => "N/A".to_string(),
    }
}

/// How long it has been since `then` (RFC 3339), as Docker says it: `2 hours`.
pub fn since(then: Option<&str>) -> String {
    let Some(then) = then.and_then(parse_rfc3339) else { return "N/A".to_string() };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let secs = (now - then).max(0);
    let (mins, hours) = (secs / 60, secs / 3600);
    let text = if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if mins == 1 {
        "About a minute".to_string()
    } else if mins < 60 {
        format!("{mins} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    };
    text
}

/// Lays out rows in columns separated by three spaces, like Docker's tables.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i < last {
                s.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(1234), "1.23kB");
        assert_eq!(size(4_260_000), "4.26MB");
        assert_eq!(size(12_300_000), "12.3MB");
        assert_eq!(size(123_000_000), "123MB");
        assert_eq!(size(1_000_000), "1MB");
    }

    #[test]
    fn times() {
        assert_eq!(time_arg("2024-02-29T12:34:56Z"), Some(1_709_210_096));
        assert_eq!(time_arg("1709210096"), Some(1_709_210_096));
        assert_eq!(time_arg("1709210096.5"), Some(1_709_210_096));
        let now = time_arg("0s").unwrap();
        assert_eq!(time_arg("1h30m"), Some(now - 5400));
        assert_eq!(time_arg("10x"), None);
        assert_eq!(time_arg(""), None);
        assert_eq!(ago(None), "N/A");
        assert_eq!(ago(Some("yesterday")), "N/A");
    }
}
