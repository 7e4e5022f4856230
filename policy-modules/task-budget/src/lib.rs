//! Policy module `task-budget` (decide stage): caps on how much one task may
//! do — calls in all, calls per tool, calls denied — read from the task's
//! counters. The call being decided counts as one more. It only caps: the
//! list phase, and calls outside a task unless `require_task`, are allowed.

use std::collections::BTreeMap;

use serde::Deserialize;
use toolgate_policy_sdk::{Counters, Decision, Input, Phase, Policy, glob, toolgate_policy};

toolgate_policy!(TaskBudget);

/// The module's config. Every cap is optional; none set allows every call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Calls per task, this one included.
    pub max_calls: Option<u64>,
    /// Calls per tool name in a task, by tool glob. Every matching glob
    /// applies, so the tightest cap wins (`{"delete_*": 1, "*": 50}`).
    #[serde(default)]
    pub per_tool: BTreeMap<String, u64>,
    /// Denied calls after which the task may make no more calls.
    pub max_denied: Option<u64>,
    /// Deny calls that belong to no task.
    #[serde(default)]
    pub require_task: bool,
}

/// The configured module.
#[derive(Debug)]
pub struct TaskBudget {
    config: Config,
}

impl Policy for TaskBudget {
    type Config = Config;

    const INPUT_FIELDS: Option<&'static [&'static str]> =
        Some(&["/phase", "/tool/name", "/task/id", "/counters"]);

    fn configure(config: Config) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn decide(&self, input: &Input) -> Decision {
        if input.phase == Phase::List {
            return Decision::allow();
        }
        let Some(task) = &input.task else {
            return if self.config.require_task {
                Decision::deny("this call belongs to no task, and tasks are required here")
            } else {
                Decision::allow()
            };
        };
        // No counters yet: the task's first call.
        let counters = input.counters.clone().unwrap_or_default();
        match self.exhausted(&counters, &input.tool.name) {
            Some((cap, why)) => {
                Decision::deny(format!("task {} {why}", task.id)).annotate("cap", cap)
            }
            None => match self.config.max_calls {
                Some(max) => Decision::allow().annotate(
                    "calls_left",
                    max.saturating_sub(counters.total.saturating_add(1)),
                ),
                None => Decision::allow(),
            },
        }
    }
}

impl TaskBudget {
    /// The first exhausted cap (its name and the reason's tail), if any.
    fn exhausted(&self, counters: &Counters, tool: &str) -> Option<(&'static str, String)> {
        let this_call = |used: u64| used.saturating_add(1);
        if let Some(max) = self.config.max_calls
            && this_call(counters.total) > max
        {
            return Some((
                "max_calls",
                format!("has used all {max} of its calls (max_calls)"),
            ));
        }
        let used = counters.per_tool.get(tool).copied().unwrap_or(0);
        let tightest = self
            .config
            .per_tool
            .iter()
            .filter(|(pattern, _)| glob::matches(pattern, tool))
            .min_by_key(|(_, cap)| **cap);
        if let Some((pattern, &cap)) = tightest
            && this_call(used) > cap
        {
            return Some((
                "per_tool",
                format!("has used tool {tool:?} {used} times of {cap} (per_tool {pattern:?})"),
            ));
        }
        if let Some(max) = self.config.max_denied
            && counters.denied >= max
        {
            return Some((
                "max_denied",
                format!(
                    "has had {} calls denied, the limit is {max} (max_denied)",
                    counters.denied
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests;
