//! Start-up stage: checks of `[policy_limits]` and the `[[policies]]` tables.
//! Compiling a module and running its vectors happens when the snapshot is
//! built (`toolgate check` does both).

use std::time::Duration;

use super::Config;

pub(super) fn check(config: &Config, positions: &[usize], report: &mut dyn FnMut(&str, String)) {
    let limits = &config.policy_limits;
    if limits.deadline.is_zero() || limits.deadline > Duration::from_secs(1) {
        report(
            "policy_limits.deadline",
            "must be between 1ms and 1s".into(),
        );
    }
    if limits.max_memory < 1 << 20 || limits.max_memory > 4 << 30 {
        report(
            "policy_limits.max_memory",
            "must be between 1 MiB and 4 GiB".into(),
        );
    }
    if limits.max_queued == 0 || limits.max_queued > 100_000 {
        report(
            "policy_limits.max_queued",
            "must be between 1 and 100000".into(),
        );
    }
    if limits
        .request_budget
        .is_some_and(|b| b < limits.deadline || b > Duration::from_secs(60))
    {
        report(
            "policy_limits.request_budget",
            format!(
                "must be at least policy_limits.deadline ({}) and at most 60s",
                super::duration::human(limits.deadline)
            ),
        );
    }
    if limits.workers.is_some_and(|w| w == 0 || w > 1024) {
        report(
            "policy_limits.workers",
            "must be between 1 and 1024 (leave it out for half the cores)".into(),
        );
    }
    for (policy, &i) in config.policies.iter().zip(positions) {
        let at = |field: &str| format!("policies[{i}].{field}");
        if !super::validate::valid_name(&policy.name) {
            report(
                &at("name"),
                format!(
                    "{:?} is not a valid policy name (1-64 of a-z, 0-9, '-', '_')",
                    policy.name
                ),
            );
        }
        if !policy.module.is_file() {
            report(
                &at("module"),
                format!("{} is not a readable file", policy.module.display()),
            );
        }
        if let Some(v) = &policy.vectors
            && !v.is_file()
        {
            report(
                &at("vectors"),
                format!("{} is not a readable file", v.display()),
            );
        }
        for route in &policy.routes {
            if !config.routes.iter().any(|r| &r.name == route) {
                report(&at("routes"), format!("route {route:?} is not defined"));
            }
        }
        if policy.tools.iter().any(String::is_empty) {
            report(&at("tools"), "a tool glob must not be empty".into());
        }
    }
}
