//! Decide stage, `list` phase: the decisions for every tool of one
//! `tools/list` result at once. Tools whose modules have been quick are
//! decided on the calling task, each module answering the whole list from
//! one warm instance; tools a slow module decides go to the policy pool
//! (`pool.rs`), one job per lane for the list, so a slow module never holds
//! an async thread here either. Every decision is charged to the request's
//! budget; one refused for time (`policy_budget`), for a full queue
//! (`policy_busy`) or by a failed job (`policy_error`) hides its tool.

use std::sync::Arc;
use std::time::Duration;

use super::module::{Held, PolicyModule};
use super::{
    Budget, Decision, DecisionInput, PolicySet, Verdicts, budget_refusal, busy_refusal, combine,
    input, pool, pool_failure, route_default,
};

/// Which module applies to which tool of a list: one row of flags per tool.
struct Applies {
    modules: usize,
    flags: Vec<bool>,
}

impl Applies {
    fn row(&self, tool: usize) -> &[bool] {
        &self.flags[tool * self.modules..(tool + 1) * self.modules]
    }
}

/// The tools of one list a slow module decides, waiting in its lane.
struct Lane {
    lane: usize,
    tools: Vec<usize>,
}

/// What the pool thread needs to decide one tool: its name, and each
/// applicable module with its input.
type Owned = (String, Vec<(Arc<PolicyModule>, Vec<u8>)>);

impl PolicySet {
    /// Decides each of `inputs` (the tools of one list, same request) as
    /// [`PolicySet::decide`] would, one decision per input, in order.
    pub async fn decide_list(
        &self,
        inputs: &[DecisionInput<'_>],
        budget: &Budget,
    ) -> Vec<Decision> {
        let applies = Applies {
            modules: self.modules.len(),
            flags: inputs
                .iter()
                .flat_map(|i| {
                    self.modules
                        .iter()
                        .map(move |m| m.applies(&i.route.name, i.tool, i.phase))
                })
                .collect(),
        };
        let mut decided: Vec<Option<Decision>> = vec![None; inputs.len()];
        let lanes = self.decide_inline(inputs, &applies, budget, &mut decided);
        for lane in lanes {
            let decisions = self.decide_on_pool(inputs, &applies, &lane, budget).await;
            for (t, decision) in lane.tools.into_iter().zip(decisions) {
                decided[t] = Some(decision);
            }
        }
        decided
            .into_iter()
            .map(|d| d.unwrap_or_else(pool_failure))
            .collect()
    }

    /// Decides, on this thread, every tool no slow module decides (the
    /// quick modules each from one held instance); returns the rest by lane.
    fn decide_inline(
        &self,
        inputs: &[DecisionInput<'_>],
        applies: &Applies,
        budget: &Budget,
        decided: &mut [Option<Decision>],
    ) -> Vec<Lane> {
        let mut lanes: Vec<Lane> = Vec::new();
        let mut held: Vec<Option<Held<'_>>> = self.modules.iter().map(|_| None).collect();
        for (t, input) in inputs.iter().enumerate() {
            let applies = applies.row(t);
            if !applies.contains(&true) {
                decided[t] = Some(route_default(input));
                continue;
            }
            // The tool waits in the lane of its first slow module, as a call does.
            if let Some((slow, _)) = self
                .modules
                .iter()
                .zip(applies)
                .find(|(m, a)| **a && !m.runs_inline())
            {
                let lane = Arc::as_ptr(slow) as usize;
                match lanes.iter_mut().find(|l| l.lane == lane) {
                    Some(l) => l.tools.push(t),
                    None => lanes.push(Lane {
                        lane,
                        tools: vec![t],
                    }),
                }
                continue;
            }
            if let Some(refused) = budget.refusal() {
                decided[t] = Some(refused);
                continue;
            }
            let wire = input::encode(input);
            let mut verdicts = Verdicts::new(input.tool);
            for ((module, _), hold) in self
                .modules
                .iter()
                .zip(applies)
                .zip(held.iter_mut())
                .filter(|((_, a), _)| **a)
            {
                let hold = hold.get_or_insert_with(|| module.hold());
                verdicts.evaluate(module, |_| hold.evaluate(&wire));
            }
            let (decision, took) = verdicts.finish();
            budget.charge(took);
            decided[t] = Some(decision);
        }
        lanes
    }

    /// Decides one lane's tools in one job on the policy pool: refused
    /// whole with `policy_busy` if the lane is full; each tool past the
    /// request's remaining policy time refused with `policy_budget`.
    async fn decide_on_pool(
        &self,
        inputs: &[DecisionInput<'_>],
        applies: &Applies,
        lane: &Lane,
        budget: &Budget,
    ) -> Vec<Decision> {
        if let Some(refused) = budget.refusal() {
            return vec![refused; lane.tools.len()];
        }
        let owned: Vec<Owned> = lane
            .tools
            .iter()
            .map(|&t| {
                let wire = input::encode(&inputs[t]);
                let docs = self
                    .modules
                    .iter()
                    .zip(applies.row(t))
                    .filter(|(_, a)| **a)
                    .map(|(m, _)| (Arc::clone(m), m.input_bytes(&wire)))
                    .collect();
                (inputs[t].tool.to_owned(), docs)
            })
            .collect();
        let (remaining, limit) = (budget.remaining_ns(), budget.limit_ns);
        let job = move || {
            let mut used = Duration::ZERO;
            owned
                .iter()
                .map(|(tool, docs)| {
                    if u64::try_from(used.as_nanos()).unwrap_or(u64::MAX) >= remaining {
                        return (budget_refusal(limit), Duration::ZERO);
                    }
                    let (decision, took) =
                        combine(docs.iter().map(|(m, doc)| (m, doc.as_slice())), tool);
                    used += took;
                    (decision, took)
                })
                .collect::<Vec<_>>()
        };
        let answer = match pool::pool(self.workers).submit(lane.lane, self.max_queued, job) {
            Ok(answer) => answer,
            Err(pool::Busy) => return vec![busy_refusal(); lane.tools.len()],
        };
        match answer.await {
            Ok(results) => results
                .into_iter()
                .map(|(decision, took)| {
                    budget.charge(took);
                    decision
                })
                .collect(),
            Err(_) => vec![pool_failure(); lane.tools.len()],
        }
    }
}
