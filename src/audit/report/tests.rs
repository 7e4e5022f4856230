use super::*;

#[test]
fn params_refuse_unknown_repeated_and_malformed_values() {
    let e = Params::from_query(Some("tool=a&sinse=1h"), &Search::PARAMS).unwrap_err();
    assert!(
        e.to_string().contains("\"sinse\"") && e.to_string().contains("since"),
        "{e}"
    );
    assert!(Params::from_query(Some("tool=a&tool=b"), &Search::PARAMS).is_err());
    let p = Params::from_query(Some("since=yesterday"), &Search::PARAMS).unwrap();
    let e = Search::parse(&p, 0).unwrap_err().to_string();
    assert!(e.starts_with("since:") && e.contains("RFC 3339"), "{e}");
    let p = Params::from_query(Some("decision=maybe"), &Search::PARAMS).unwrap();
    let e = Search::parse(&p, 0).unwrap_err().to_string();
    assert!(e.contains("allow, deny, needs_approval"), "{e}");
    let p = Params::from_query(Some("limit=0"), &Search::PARAMS).unwrap();
    assert!(
        Search::parse(&p, 0)
            .unwrap_err()
            .to_string()
            .starts_with("limit:")
    );
    let p = Params::from_query(Some("by=tool,colour"), &Denials::PARAMS).unwrap();
    let e = Denials::parse(&p, 0).unwrap_err().to_string();
    assert!(e.starts_with("by:") && e.contains("label:NAME"), "{e}");
}

#[test]
fn windows_take_rfc3339_or_a_duration_before_now() {
    let now = 1_800_000_000_000;
    let p =
        Params::from_query(Some("since=1h&until=2027-01-15T08:00:00Z"), &Window::PARAMS).unwrap();
    let w = Window::parse(&p, now).unwrap();
    assert_eq!(w.since_ms, now - 3_600_000);
    let until: jiff::Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
    assert_eq!(w.until_ms, until.as_millisecond());
    let p = Params::from_query(Some("since=2h&until=3h"), &Window::PARAMS).unwrap();
    assert!(Window::parse(&p, now).is_err(), "since after until");
}

#[test]
fn refusals_are_classed() {
    for r in [
        "needs_approval",
        "approval_pending",
        "approval_denied",
        "grant_exhausted",
    ] {
        assert_eq!(Class::of(r), Class::Approval, "{r}");
    }
    for r in ["policy_deny", "no_policy", "task_ended", "task_invalid"] {
        assert_eq!(Class::of(r), Class::Policy, "{r}");
    }
    assert_eq!(Class::of("policy_error"), Class::Fault);
    assert_eq!(Class::of("policy_busy"), Class::Fault);
    assert_eq!(Class::of("policy_budget"), Class::Fault);
}

#[test]
fn p90_is_nearest_rank() {
    assert_eq!(drift_p90(&[]), None);
    assert_eq!(drift_p90(&[5]), Some(5));
    assert_eq!(drift_p90(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), Some(9));
    assert_eq!(drift_p90(&[10, 1, 2]), Some(10));
}

fn drift_p90(v: &[i64]) -> Option<i64> {
    drift::p90(v)
}
