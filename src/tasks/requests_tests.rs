//! Task-context stage unit tests: lifetimes in requests — compound
//! durations, caps named in words a user understands.

use std::time::Duration;

use super::{NewGrant, window, within};

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600_000;
const DAY: Duration = Duration::from_secs(86_400);

fn grant(ttl: Option<&str>, expires_at: Option<u64>) -> NewGrant {
    NewGrant {
        task_id: "t".into(),
        tool: "x".into(),
        route: None,
        constraints: Vec::new(),
        not_before: None,
        expires_at,
        ttl: ttl.map(str::to_owned),
        max_uses: None,
        reason: "r".into(),
    }
}

#[test]
fn compound_ttls_are_read() {
    let (_, expires) = window(&grant(Some("1h30m"), None), NOW, DAY).unwrap();
    assert_eq!(expires, NOW + 5_400_000);
    let (_, expires) = window(&grant(Some("1d"), None), NOW, DAY).unwrap();
    assert_eq!(expires, NOW + 86_400_000);
}

#[test]
fn a_ttl_over_the_cap_names_the_field_the_limit_and_the_knob() {
    let e = window(&grant(Some("48h"), None), NOW, DAY)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "ttl: 2d is longer than 1d, the longest a grant may live (tasks.max_grant_ttl)"
    );
    assert!(!e.contains("86400"), "{e}");
}

#[test]
fn an_expiry_over_the_cap_names_the_time_and_the_limit() {
    let at = NOW / 1000 + 2 * 86_400;
    let e = window(&grant(None, Some(at)), NOW, DAY)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "expires_at: the grant would end at 2026-01-03T00:00:00Z, more than 1d from now, \
         the longest a grant may live (tasks.max_grant_ttl)"
    );
}

#[test]
fn bad_durations_say_what_is_accepted() {
    let e = window(&grant(Some("2 fortnights"), None), NOW, DAY)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ttl: \"2 fortnights\" is not a duration"),
        "{e}"
    );
    assert!(e.contains("\"1h30m\""), "{e}");
    let e = within("ttl", Duration::ZERO, DAY, "tasks.max_ttl", "task").unwrap_err();
    assert_eq!(e.to_string(), "ttl: must be longer than 0s");
}
