//! Record stage: the tool names metrics may carry as a label. A caller can
//! name any tool; only names the gateway knows — configured in a policy's
//! `tools` (no glob) or seen in an upstream's `tools/list` answer — become
//! labels, up to a cap; every other name is counted as `other`.

use std::collections::HashSet;
use std::sync::RwLock;

/// Most distinct tool labels.
pub const MAX_TOOL_LABELS: usize = 500;

/// The label of tools not known (or past the cap).
pub const OTHER: &str = "other";

#[derive(Debug, Default)]
pub struct ToolNames {
    known: RwLock<HashSet<String>>,
}

impl ToolNames {
    /// The label for `tool`: itself if known, else `other`.
    pub fn label<'t>(&self, tool: &'t str) -> &'t str {
        match self.known.read() {
            Ok(known) if known.contains(tool) => tool,
            Ok(_) | Err(_) => OTHER,
        }
    }

    /// The labels for `tools`, in order, under one look at the known names.
    pub fn labels<'t>(&self, tools: impl Iterator<Item = &'t str>) -> Vec<&'t str> {
        let known = self.known.read().ok();
        tools
            .map(|tool| match &known {
                Some(known) if known.contains(tool) => tool,
                Some(_) | None => OTHER,
            })
            .collect()
    }

    /// Learns the names of one upstream's list: [`Self::observe`] for each,
    /// with one look at the known names when all are known already.
    pub fn observe_all(&self, tools: &[&str]) {
        let all_known = self.known.read().is_ok_and(|known| {
            known.len() >= MAX_TOOL_LABELS || tools.iter().all(|t| known.contains(*t))
        });
        if all_known {
            return;
        }
        for tool in tools {
            self.observe(tool);
        }
    }

    /// Learns a tool name an upstream offered, or config names.
    pub fn observe(&self, tool: &str) {
        if let Ok(known) = self.known.read()
            && (known.contains(tool) || known.len() >= MAX_TOOL_LABELS)
        {
            return;
        }
        if let Ok(mut known) = self.known.write()
            && known.len() < MAX_TOOL_LABELS
            && tool.len() <= 128
        {
            known.insert(tool.to_owned());
        }
    }

    /// Learns the exact tool names (not globs) policies are configured for.
    pub fn configure<'p>(&self, names: impl IntoIterator<Item = &'p str>) {
        for name in names {
            if !name.contains(['*', '?', '[']) {
                self.observe(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_names_past_the_cap_are_other() {
        let t = ToolNames::default();
        t.configure(["search", "create_*"]);
        assert_eq!(t.label("search"), "search");
        assert_eq!(t.label("create_issue"), OTHER);
        for i in 0..MAX_TOOL_LABELS + 10 {
            t.observe(&format!("tool{i}"));
        }
        assert_eq!(t.label("tool0"), "tool0");
        assert_eq!(t.label(&format!("tool{}", MAX_TOOL_LABELS + 5)), OTHER);
        let past = format!("tool{}", MAX_TOOL_LABELS + 6);
        t.observe_all(&["tool1", &past]);
        assert_eq!(
            t.labels(["tool1", past.as_str(), "search"].into_iter()),
            vec!["tool1", OTHER, "search"]
        );
    }

    #[test]
    fn a_list_learns_every_new_name() {
        let t = ToolNames::default();
        t.observe("a");
        t.observe_all(&["a", "b", "c"]);
        assert_eq!(
            t.labels(["a", "b", "c", "d"].into_iter()),
            vec!["a", "b", "c", OTHER]
        );
    }
}
