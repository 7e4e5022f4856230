//! Glob patterns for tool names, subjects and grants: `*` matches any run of
//! characters (also none, also `/`), `?` exactly one character; everything
//! else is literal. No classes, no escapes: names in toolgate never need them,
//! and fewer metacharacters means fewer surprises in an allowlist. The host
//! (which tools a module applies to, which grants a call may use) and every
//! module built with the SDK match with this one function.

/// Whether `text` matches `pattern` as a whole (not a substring search).
pub fn matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Byte offsets; `?` steps over one whole UTF-8 character.
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and how much text it has swallowed so far: on a
    // mismatch we backtrack there and let it take one more character. Only
    // the latest star needs remembering, so this is O(len²) at worst, never
    // exponential.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                t += char_len(text[t]);
            }
            // Equal bytes: a multi-byte character matches byte by byte.
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    let next = star_t + char_len(text[star_t]);
                    p = star_p + 1;
                    t = next;
                    star = Some((star_p, next));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 character that starts with `first`.
fn char_len(first: u8) -> usize {
    match first.leading_ones() {
        2 => 2,
        3 => 3,
        4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literals_match_only_themselves() {
        assert!(matches("echo", "echo"));
        assert!(!matches("echo", "echo2"));
        assert!(!matches("echo", "ech"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
    }

    #[test]
    fn star_matches_any_run() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything/at all"));
        assert!(matches("search_*", "search_"));
        assert!(matches("search_*", "search_code"));
        assert!(!matches("search_*", "research_code"));
        assert!(matches(
            "spiffe://example.org/agent/*",
            "spiffe://example.org/agent/a/b"
        ));
        assert!(matches("*_file", "read_file"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("a**b", "ab"));
    }

    #[test]
    fn question_mark_is_one_char() {
        assert!(matches("t?p", "tap"));
        assert!(matches("t?p", "tép"));
        assert!(!matches("t?p", "tp"));
        assert!(!matches("t?p", "taap"));
        assert!(matches("?", "é"));
        assert!(!matches("??", "é"));
        assert!(matches("*é?", "aéb"));
        assert!(!matches("*é?", "aébç"));
        assert!(matches("*ç", "éç"));
    }

    #[test]
    fn backtracking_is_not_exponential() {
        let text = "a".repeat(2000);
        assert!(!matches("*a*a*a*a*a*a*b", &text));
    }
}
