//! Grant constraint regexes: the `regex-lite` dialect (Perl-like syntax,
//! ASCII-only classes: `\d`, `\w`, `\s` and `[[:alpha:]]` are ASCII; no
//! Unicode classes such as `\p{Lu}`, no look-around, no backreferences),
//! always matched against the whole value.

pub use regex_lite::Regex;

/// Largest compiled program a constraint regex may need (bytes).
pub const SIZE_LIMIT: usize = 1 << 20;
/// Deepest nesting of groups and repetitions a constraint regex may have.
pub const NEST_LIMIT: u32 = 64;

/// Why a constraint regex cannot be used: one line, readable by the person
/// who wrote the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What the regex engine objected to, e.g. `Unicode classes are not
    /// supported`.
    pub why: String,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.why)
    }
}

/// Compiles `pattern` to match a whole value (`^(?:pattern)$`), within the
/// size and nesting limits.
pub fn compile(pattern: &str) -> Result<Regex, Error> {
    regex_lite::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| Error {
            // The engine's messages are single lines; keep it so.
            why: format!("{e}").replace(['\n', '\r'], " "),
        })
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn matches_the_whole_value() {
        let re = compile("[A-Z]+-[0-9]+").unwrap();
        assert!(re.is_match("ABC-12"));
        assert!(!re.is_match("xABC-12"));
        assert!(!re.is_match("ABC-12x"));
        // An alternation is anchored as a whole, not per branch.
        let re = compile("a|b").unwrap();
        assert!(re.is_match("a") && re.is_match("b") && !re.is_match("ab"));
    }

    #[test]
    fn what_the_dialect_lacks_is_refused_in_one_line() {
        for bad in [r"\p{Lu}+", r"(?=a)", r"(a)\1", "(", "[z-a]"] {
            let e = compile(bad).unwrap_err();
            assert!(!e.why.is_empty() && !e.why.contains('\n'), "{bad}: {e}");
        }
        assert!(compile(r"\p{Lu}+").unwrap_err().why.contains("Unicode"));
    }

    #[test]
    fn classes_are_ascii() {
        let re = compile(r"\d+").unwrap();
        assert!(re.is_match("42"));
        assert!(!re.is_match("٤٢"), "Arabic-Indic digits are not \\d here");
    }

    #[test]
    fn huge_repetitions_are_refused() {
        assert!(compile("(a{1000}){1000}").is_err());
    }
}
