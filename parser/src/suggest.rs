//! "Did you mean ...?" for unknown instruction keywords.

/// Every instruction keyword BuildKit knows, upper case.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The known keyword closest to `word`, when one is close enough to be a likely typo.
pub fn suggest_keyword(word: &str) -> Option<&'static str> {
    let upper = word.to_uppercase();
    KEYWORDS
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&upper, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::suggest_keyword;

    #[test]
    fn typos() {
        assert_eq!(suggest_keyword("COPPY"), Some("COPY"));
        assert_eq!(suggest_keyword("form"), Some("FROM"));
        assert_eq!(suggest_keyword("WORKDIT"), Some("WORKDIR"));
        assert_eq!(suggest_keyword("BANANA"), None);
    }
}
