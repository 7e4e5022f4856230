//! Decide stage: the Rego builtins toolgate computes for OPA modules.
//! `opa build -t wasm` compiles most builtins into the module; the rest it
//! lists in `builtins()` and calls through `opa_builtin0..4`. toolgate
//! provides the cheap, deterministic ones decision policies use and refuses
//! at load a module that needs any other, rather than fail mid-decision.

use std::collections::HashMap;

use serde_json::Value;

use super::{sprintf, time};
use crate::decide::module::Fault;

/// A builtin toolgate computes on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    Sprintf,
    TimeNowNs,
    TimeParseRfc3339Ns,
    TimeParseDurationNs,
    TimeDate,
    TimeClock,
    TimeWeekday,
    Trace,
    JsonIsValid,
}

/// Every builtin toolgate provides, by its Rego name.
const PROVIDED: [(&str, Builtin); 9] = [
    ("json.is_valid", Builtin::JsonIsValid),
    ("sprintf", Builtin::Sprintf),
    ("time.clock", Builtin::TimeClock),
    ("time.date", Builtin::TimeDate),
    ("time.now_ns", Builtin::TimeNowNs),
    ("time.parse_duration_ns", Builtin::TimeParseDurationNs),
    ("time.parse_rfc3339_ns", Builtin::TimeParseRfc3339Ns),
    ("time.weekday", Builtin::TimeWeekday),
    ("trace", Builtin::Trace),
];

impl Builtin {
    pub(super) fn named(name: &str) -> Option<Self> {
        PROVIDED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }

    fn name(self) -> &'static str {
        PROVIDED
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }

    fn arity(self) -> usize {
        match self {
            Self::TimeNowNs => 0,
            Self::Sprintf => 2,
            Self::TimeParseRfc3339Ns
            | Self::TimeParseDurationNs
            | Self::TimeDate
            | Self::TimeClock
            | Self::TimeWeekday
            | Self::Trace
            | Self::JsonIsValid => 1,
        }
    }
}

/// The module's builtin ids and what toolgate computes for each.
pub(super) type Table = HashMap<i32, Builtin>;

/// Reads the module's `builtins()` answer (`{"name": id, …}`), refusing a
/// module that needs a builtin toolgate does not provide and naming all of
/// them, so an author fixes the policy in one pass.
pub(super) fn table(declared: &Value) -> Result<Table, Fault> {
    let map = declared.as_object().ok_or_else(|| {
        Fault::Load(format!(
            "OPA module's builtins() is not an object: {declared}"
        ))
    })?;
    let mut table = Table::new();
    let mut missing = Vec::new();
    for (name, id) in map {
        let id = id
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| {
                Fault::Load(format!("OPA module's builtin {name:?} has no integer id"))
            })?;
        match Builtin::named(name) {
            Some(b) => {
                table.insert(id, b);
            }
            None => missing.push(name.as_str()),
        }
    }
    if missing.is_empty() {
        return Ok(table);
    }
    missing.sort_unstable();
    let provided: Vec<&str> = PROVIDED.iter().map(|(n, _)| *n).collect();
    Err(Fault::Load(format!(
        "OPA module needs builtins toolgate does not provide: {} (toolgate provides {}; \
         other Rego builtins are compiled into the module)",
        missing.join(", "),
        provided.join(", ")
    )))
}

/// Computes a builtin on its arguments, already read out of the module as
/// JSON. `Ok(None)` is an undefined result (what OPA gives for a builtin
/// error by default); `Err` means the module called it wrongly, which
/// `opa build` never does: the call traps.
pub(super) fn call(
    builtin: Builtin,
    args: &[Value],
    now: &mut Option<i64>,
    module: &str,
) -> Result<Option<Value>, String> {
    if args.len() != builtin.arity() {
        return Err(format!(
            "builtin {} takes {} arguments, the module passed {}",
            builtin.name(),
            builtin.arity(),
            args.len()
        ));
    }
    let out = match (builtin, args) {
        (Builtin::Sprintf, [Value::String(format), Value::Array(values)]) => {
            Some(Value::from(sprintf::sprintf(format, values)))
        }
        (Builtin::Sprintf, _) => None,
        (Builtin::TimeNowNs, _) => Some(Value::from(time::now_ns(now))),
        (Builtin::TimeParseRfc3339Ns, [Value::String(s)]) => {
            time::parse_rfc3339_ns(s).map(Value::from)
        }
        (Builtin::TimeParseDurationNs, [Value::String(s)]) => {
            time::parse_duration_ns(s).map(Value::from)
        }
        (Builtin::TimeParseRfc3339Ns | Builtin::TimeParseDurationNs, _) => None,
        (Builtin::TimeDate, [arg]) => time::date(arg),
        (Builtin::TimeClock, [arg]) => time::clock(arg),
        (Builtin::TimeWeekday, [arg]) => time::weekday(arg),
        (Builtin::Trace, [note]) => {
            let note = note
                .as_str()
                .map_or_else(|| note.to_string(), str::to_owned);
            tracing::debug!(target: "toolgate::policy", module = %module, "trace: {}", truncate(&note, 1024));
            Some(Value::Bool(true))
        }
        (Builtin::JsonIsValid, [Value::String(s)]) => Some(Value::Bool(
            serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok(),
        )),
        (Builtin::JsonIsValid, _) => Some(Value::Bool(false)),
        (Builtin::TimeDate | Builtin::TimeClock | Builtin::TimeWeekday | Builtin::Trace, _) => None,
    };
    Ok(out)
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_builtins_are_all_named() {
        let declared = json!({"http.send": 0, "sprintf": 1, "net.lookup_ip_addr": 2});
        let Err(Fault::Load(msg)) = table(&declared) else {
            panic!("a module needing http.send must be refused");
        };
        assert!(
            msg.contains("does not provide: http.send, net.lookup_ip_addr ("),
            "{msg}"
        );
        let ok = table(&json!({"sprintf": 3, "time.now_ns": 0})).unwrap();
        assert_eq!(ok.get(&3), Some(&Builtin::Sprintf));
        assert_eq!(ok.get(&0), Some(&Builtin::TimeNowNs));
        assert!(table(&json!({"sprintf": "x"})).is_err());
        assert!(table(&json!([])).is_err());
    }

    #[test]
    fn calls_check_arity_and_types() {
        let mut now = None;
        let out = call(
            Builtin::Sprintf,
            &[json!("%s=%d"), json!(["a", 1])],
            &mut now,
            "m",
        )
        .unwrap();
        assert_eq!(out, Some(json!("a=1")));
        assert!(call(Builtin::Sprintf, &[json!("%s")], &mut now, "m").is_err());
        assert_eq!(
            call(Builtin::Sprintf, &[json!(1), json!([])], &mut now, "m").unwrap(),
            None
        );
        assert_eq!(
            call(Builtin::Trace, &[json!("hi")], &mut now, "m").unwrap(),
            Some(json!(true))
        );
        assert_eq!(
            call(Builtin::JsonIsValid, &[json!("{\"a\":1}")], &mut now, "m").unwrap(),
            Some(json!(true))
        );
        assert_eq!(
            call(Builtin::JsonIsValid, &[json!("{")], &mut now, "m").unwrap(),
            Some(json!(false))
        );
        assert_eq!(
            call(Builtin::TimeParseDurationNs, &[json!("1s")], &mut now, "m").unwrap(),
            Some(json!(1_000_000_000))
        );
        let a = call(Builtin::TimeNowNs, &[], &mut now, "m").unwrap();
        assert!(
            a.as_ref()
                .and_then(Value::as_i64)
                .is_some_and(|n| n > 1_700_000_000_000_000_000)
        );
        assert_eq!(
            a,
            call(Builtin::TimeNowNs, &[], &mut now, "m").unwrap(),
            "one instant per evaluation"
        );
    }
}
