use serde_json::{Value, json};

use super::*;

fn constraint(json: Value) -> Constraint {
    serde_json::from_value(json).expect("any object reads as a constraint")
}

fn check(c: Value, args: Value) -> Result<(), Violation> {
    constraint(c).check(&args)
}

#[test]
fn equals_and_one_of() {
    assert!(
        check(
            json!({"pointer": "/repo", "equals": "acme/app"}),
            json!({"repo": "acme/app"})
        )
        .is_ok()
    );
    assert!(check(json!({"pointer": "/n", "equals": 1}), json!({"n": 1.0})).is_ok());
    let err = check(
        json!({"pointer": "/repo", "equals": "acme/app"}),
        json!({"repo": "acme/other"}),
    );
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("argument /repo must equal \"acme/app\"".to_owned())
    );
    assert!(
        check(
            json!({"pointer": "/env", "one_of": ["dev", "staging"]}),
            json!({"env": "dev"})
        )
        .is_ok()
    );
    assert!(
        check(
            json!({"pointer": "/env", "one_of": ["dev"]}),
            json!({"env": "prod"})
        )
        .is_err()
    );
}

#[test]
fn glob_regex_prefix_need_strings() {
    assert!(
        check(
            json!({"pointer": "/b", "glob": "fix/*"}),
            json!({"b": "fix/x"})
        )
        .is_ok()
    );
    assert!(check(json!({"pointer": "/b", "glob": "*"}), json!({"b": 1})).is_err());
    assert!(
        check(
            json!({"pointer": "/t", "regex": "[A-Z]+-[0-9]+"}),
            json!({"t": "OPS-12"})
        )
        .is_ok()
    );
    // Whole-value match: a regex is anchored.
    assert!(
        check(
            json!({"pointer": "/t", "regex": "[A-Z]+-[0-9]+"}),
            json!({"t": "x OPS-12"})
        )
        .is_err()
    );
    assert!(
        check(
            json!({"pointer": "/p", "prefix": "/w/"}),
            json!({"p": "/w/a"})
        )
        .is_ok()
    );
    assert!(
        check(
            json!({"pointer": "/p", "prefix": "/w/"}),
            json!({"p": "/x"})
        )
        .is_err()
    );
}

#[test]
fn range_needs_numbers_within_bounds() {
    let c = json!({"pointer": "/amount", "range": {"min": 0, "max": 100}});
    assert!(check(c.clone(), json!({"amount": 0})).is_ok());
    assert!(check(c.clone(), json!({"amount": 100})).is_ok());
    assert!(check(c.clone(), json!({"amount": 100.5})).is_err());
    assert!(check(c.clone(), json!({"amount": -1})).is_err());
    assert!(check(c, json!({"amount": "50"})).is_err());
    assert!(
        check(
            json!({"pointer": "/a", "range": {"max": 5}}),
            json!({"a": -1e9})
        )
        .is_ok()
    );
}

#[test]
fn missing_argument_is_its_own_violation() {
    let err = check(json!({"pointer": "/repo", "equals": "x"}), json!({}));
    assert_eq!(
        err,
        Err(Violation::Missing {
            pointer: "/repo".into()
        })
    );
    assert!(check(json!({"pointer": "/repo", "equals": "x"}), Value::Null).is_err());
}

#[test]
fn odd_shapes_read_but_never_hold() {
    for odd in [
        json!({"pointer": "/a", "nearly": 1}),
        json!({"pointer": "/a", "equals": 1, "glob": "*"}),
        json!({"pointer": "/a"}),
        json!({"equals": 1}),
        json!({"pointer": "/a", "one_of": "x"}),
        json!({"pointer": "/a", "range": {"min": "0"}}),
        json!({"pointer": "/a", "regex": "("}),
    ] {
        let result = check(odd.clone(), json!({"a": 1}));
        assert!(
            matches!(
                result,
                Err(Violation::Unusable { .. }) | Err(Violation::Mismatch { .. })
            ),
            "{odd}"
        );
    }
}
