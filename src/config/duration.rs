//! Start-up stage (and every other place a duration is written): the one
//! parser and printer of durations — config values, admin API bodies and CLI
//! options alike. Written as `"250ms"`, `"30s"`, `"15m"`, `"1h30m"`, `"1d"`
//! (also `"2 hours"`, ISO 8601 `"PT1H"`), via jiff's friendly format; days
//! are 24 hours, months and years are refused (they have no fixed length).

use std::time::Duration;

use jiff::fmt::friendly::{Designator, Spacing, SpanPrinter};
use jiff::{SignedDuration, Span, SpanRelativeTo, SpanRound, Unit};
use serde::{Deserialize, Deserializer, de::Error as _};

/// What every duration error ends with.
const EXAMPLES: &str = "write e.g. \"250ms\", \"30s\", \"15m\", \"1h30m\" or \"1d\"";

/// serde `with = "duration"`: a duration string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

/// serde `with = "duration::option"`: an optional duration string
/// (with `#[serde(default)]`).
pub mod option {
    use std::time::Duration;

    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}

/// Parses a duration. Errors quote the text and show the accepted forms.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let span: Span = trimmed
        .parse()
        .map_err(|_| format!("{text:?} is not a duration ({EXAMPLES})"))?;
    if span.is_negative() {
        return Err(format!("{text:?} is negative ({EXAMPLES})"));
    }
    let signed = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| {
            format!(
                "{text:?} has no fixed length: months and years vary; use days or hours ({EXAMPLES})"
            )
        })?;
    Duration::try_from(signed).map_err(|_| format!("{text:?} is out of range ({EXAMPLES})"))
}

/// A duration as a person writes it, in the form [`parse`] reads back:
/// `"250ms"`, `"45s"`, `"1h30m"`, `"1d"`, `"2d12h"`.
pub fn human(d: Duration) -> String {
    static PRINTER: SpanPrinter = SpanPrinter::new()
        .designator(Designator::Compact)
        .spacing(Spacing::None);
    let balanced = SignedDuration::try_from(d)
        .ok()
        .and_then(|s| Span::try_from(s).ok())
        .and_then(|span| {
            span.round(
                SpanRound::new()
                    .largest(Unit::Day)
                    .smallest(Unit::Millisecond)
                    .days_are_24_hours(),
            )
            .ok()
        });
    match balanced {
        Some(span) => PRINTER.span_to_string(&span),
        // Beyond what a Span holds (centuries): seconds say it exactly.
        None => format!("{}s", d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_compound_forms() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h 30m", Duration::from_secs(5400)),
            ("1d", Duration::from_secs(86_400)),
            ("2d12h", Duration::from_secs(216_000)),
            ("1w", Duration::from_secs(7 * 86_400)),
            ("90 minutes", Duration::from_secs(5400)),
            ("PT1H", Duration::from_secs(3600)),
            (" 0s ", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refusals_say_what_is_accepted() {
        for bad in ["", "5", "5x", "five minutes", "-1h", "1h ago", "1mo", "1y"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
            assert!(e.contains("\"1h30m\""), "{bad}: {e}");
        }
        assert!(parse("1mo").unwrap_err().contains("no fixed length"));
        assert!(parse("-1h").unwrap_err().contains("negative"));
    }

    #[test]
    fn human_reads_back() {
        for (secs, text) in [
            (45, "45s"),
            (5400, "1h30m"),
            (86_400, "1d"),
            (172_800, "2d"),
            (216_000, "2d12h"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(human(d), text);
            assert_eq!(parse(&human(d)), Ok(d));
        }
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::ZERO), "0s");
    }
}
