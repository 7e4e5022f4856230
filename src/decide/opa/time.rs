//! Decide stage: OPA's `time.*` builtins for OPA modules, in UTC and
//! nanoseconds since the Unix epoch as OPA counts them. A value OPA would
//! reject (a bad string, a time zone other than UTC) is `None`: the builtin
//! is undefined, as OPA makes it when builtin errors are not strict.

use serde_json::Value;

const NS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i128 = 86_400;

/// `time.now_ns()`: the wall clock, read once per evaluation because OPA
/// promises every call within one query the same instant.
pub(super) fn now_ns(cached: &mut Option<i64>) -> i64 {
    *cached.get_or_insert_with(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    })
}

/// `time.parse_rfc3339_ns("2026-05-01T12:00:00.5+02:00")`.
pub(super) fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i128> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0i128;
    if let Some(after) = rest.strip_prefix('.') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        frac_ns = after[..digits].parse::<i128>().ok()? * 10i128.pow(9 - digits as u32);
        rest = &after[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i128> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i128::from((a - b'0') * 10 + (b - b'0')))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset;
    i64::try_from(secs * NS_PER_SEC + frac_ns).ok()
}

/// `time.parse_duration_ns("1h30m")`, with Go's units (`ns us µs ms s m h`).
pub(super) fn parse_duration_ns(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole: i128 = if int_len == 0 {
            0
        } else {
            rest[..int_len].parse().ok()?
        };
        rest = &rest[int_len..];
        let mut frac = "";
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            frac = &after[..len];
            rest = &after[len..];
        }
        if int_len == 0 && frac.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NS_PER_SEC,
            "m" => 60 * NS_PER_SEC,
            "h" => 3600 * NS_PER_SEC,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(whole.checked_mul(unit)?)?;
        if !frac.is_empty() {
            let digits = &frac[..frac.len().min(18)];
            let scale = 10f64.powi(i32::try_from(digits.len()).ok()?);
            let value: f64 = digits.parse().ok()?;
            // Go scales the fraction in floating point too.
            total = total.checked_add((value * (unit as f64 / scale)) as i128)?;
        }
        if total > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    i64::try_from(if neg { -total } else { total }).ok()
}

/// `time.date(ns)` ⇒ `[year, month, day]`, UTC.
pub(super) fn date(arg: &Value) -> Option<Value> {
    let (y, m, d) = civil_from_days(utc_ns(arg)?.div_euclid(NS_PER_SEC * SECS_PER_DAY));
    Some(serde_json::json!([i64::try_from(y).ok()?, m, d]))
}

/// `time.clock(ns)` ⇒ `[hour, minute, second]`, UTC.
pub(super) fn clock(arg: &Value) -> Option<Value> {
    let secs = utc_ns(arg)?.div_euclid(NS_PER_SEC).rem_euclid(SECS_PER_DAY);
    Some(serde_json::json!([
        i64::try_from(secs / 3600).ok()?,
        i64::try_from(secs / 60 % 60).ok()?,
        i64::try_from(secs % 60).ok()?
    ]))
}

/// `time.weekday(ns)` ⇒ `"Monday"`…, UTC.
pub(super) fn weekday(arg: &Value) -> Option<Value> {
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let days = utc_ns(arg)?.div_euclid(NS_PER_SEC * SECS_PER_DAY);
    // 1970-01-01 was a Thursday.
    let index = usize::try_from((days + 4).rem_euclid(7)).ok()?;
    DAYS.get(index).map(|d| Value::from(*d))
}

/// The instant of a `time.*` argument: `ns` or `[ns, "UTC"]`. Other time
/// zones would need a zone database; they make the builtin undefined.
fn utc_ns(arg: &Value) -> Option<i128> {
    match arg {
        Value::Number(n) => n.as_i64().map(i128::from),
        Value::Array(pair) => match pair.as_slice() {
            [Value::Number(n), Value::String(tz)] if tz.is_empty() || tz == "UTC" => {
                n.as_i64().map(i128::from)
            }
            _ => None,
        },
        _ => None,
    }
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_parses_as_go_does() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2026-05-01T12:00:00Z"),
            Some(1_777_636_800_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-05-01T14:00:00.5+02:00"),
            Some(1_777_636_800_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("1969-12-31T23:59:59Z"),
            Some(-1_000_000_000)
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-05-01 12:00:00Z",
            "2026-05-01T12:00:00",
            "2026-13-01T00:00:00Z",
            "x",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration_ns("0"), Some(0));
        assert_eq!(parse_duration_ns("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("-2ms"), Some(-2_000_000));
        assert_eq!(parse_duration_ns("300\u{b5}s"), Some(300_000));
        for bad in ["", "1", "1d", "h", "9999999999999h"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn calendar_in_utc() {
        let ns = json!(1_777_636_800_000_000_000i64 + 3_723_000_000_000);
        assert_eq!(date(&ns), Some(json!([2026, 5, 1])));
        assert_eq!(clock(&ns), Some(json!([13, 2, 3])));
        assert_eq!(weekday(&ns), Some(json!("Friday")));
        assert_eq!(weekday(&json!([0, "UTC"])), Some(json!("Thursday")));
        assert_eq!(date(&json!(-1)), Some(json!([1969, 12, 31])));
        assert_eq!(date(&json!([0, "Europe/Paris"])), None);
        let mut cached = None;
        assert_eq!(now_ns(&mut cached), now_ns(&mut cached));
    }
}
