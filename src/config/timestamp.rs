//! Points in time as people write and read them — the one parser and
//! printer of dates (CLI options and output), via jiff: RFC 3339 or Unix
//! seconds in, RFC 3339 UTC out.

use jiff::Timestamp;

/// Unix seconds from `"1767225600"` or an RFC 3339 time such as
/// `"2026-01-01T00:00:00Z"` or `"2026-01-01T01:00:00+01:00"`.
pub fn parse_unix_seconds(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let refuse = || {
        format!(
            "{text:?} is not a time: write RFC 3339 (e.g. \"2026-05-01T17:00:00Z\" or \
             \"2026-05-01T19:00:00+02:00\") or Unix seconds"
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| refuse());
    }
    let at: Timestamp = text.parse().map_err(|_| refuse())?;
    u64::try_from(at.as_second()).map_err(|_| format!("{text:?} is before 1970"))
}

/// Unix milliseconds as `2026-01-02T15:04:05Z` (UTC, whole seconds), a
/// form [`parse_unix_seconds`] reads back.
pub fn rfc3339(at_ms: u64) -> String {
    i64::try_from(at_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || format!("{} s after 1970", at_ms / 1000),
            |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_and_rfc3339_are_read() {
        assert_eq!(parse_unix_seconds("1767225600"), Ok(1_767_225_600));
        assert_eq!(
            parse_unix_seconds("2026-01-01T00:00:00Z"),
            Ok(1_767_225_600)
        );
        assert_eq!(
            parse_unix_seconds("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600)
        );
        for bad in ["", "tomorrow", "2026-01-01", "1969-12-31T23:59:59Z", "-5"] {
            assert!(parse_unix_seconds(bad).is_err(), "{bad}");
        }
        assert!(
            parse_unix_seconds("next week")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn printed_in_utc_and_read_back() {
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696_000), "2000-02-29T12:34:56Z");
        assert_eq!(
            parse_unix_seconds(&rfc3339(951_827_696_999)),
            Ok(951_827_696)
        );
    }
}
