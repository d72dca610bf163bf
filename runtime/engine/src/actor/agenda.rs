//! What the run actor has to look at next, kept up to date on every step
//! status change so that each transition costs O(what changed), not
//! O(steps in the run): a 400-step chain must not rescan 400 steps per step.

use std::collections::{BTreeSet, HashMap};
use weft_model::{StepId, StepKey, StepStatus};

/// A step waiting for a slot: ordered by template (topological) position,
/// then `forEach` item, so earlier steps and items start first.
pub(super) type ReadyEntry = (usize, u32, StepKey);

/// Scheduling bookkeeping of one run.
#[derive(Default)]
pub(super) struct Agenda {
    /// Topological positions of top-level PENDING steps whose `needs` may
    /// have just finished.
    pub(super) examine: BTreeSet<usize>,
    /// Steps (or items) whose `needs` are met, waiting for a slot.
    pub(super) ready: BTreeSet<ReadyEntry>,
    /// RETRYING steps by the time their next attempt is due (ms).
    pub(super) retries: BTreeSet<(i64, StepKey)>,
    /// Unfinished items per fan-out parent.
    pub(super) items_left: HashMap<StepId, usize>,
    /// Fan-out parents whose items all finished.
    pub(super) parents_done: BTreeSet<StepId>,
    /// Counts over every step record.
    pub(super) tally: Tally,
}

/// Status counts, fan-out parents apart (progress does not count them).
#[derive(Default)]
pub(super) struct Tally {
    /// Step records, parents included.
    pub(super) all: usize,
    /// Terminal step records, parents included.
    pub(super) terminal: usize,
    /// RUNNING, READY or RETRYING records, parents included.
    pub(super) active: usize,
    /// AWAITING_INPUT records.
    pub(super) awaiting: usize,
    /// Records that are not fan-out parents.
    pub(super) countable: usize,
    /// Terminal records that are not fan-out parents.
    pub(super) countable_terminal: usize,
    /// RUNNING records that are not fan-out parents.
    pub(super) running: BTreeSet<StepKey>,
}

fn is_active(s: StepStatus) -> bool {
    matches!(
        s,
        StepStatus::Running | StepStatus::Ready | StepStatus::Retrying
    )
}

impl Tally {
    /// Accounts a record moving from `from` (`None`: new record) to `to`.
    pub(super) fn change(
        &mut self,
        key: &StepKey,
        parent: bool,
        from: Option<StepStatus>,
        to: StepStatus,
    ) {
        match from {
            None => {
                self.all += 1;
                if !parent {
                    self.countable += 1;
                }
            }
            Some(from) => self.count(key, parent, from, false),
        }
        self.count(key, parent, to, true);
    }

    fn count(&mut self, key: &StepKey, parent: bool, s: StepStatus, add: bool) {
        let bump = |n: &mut usize| {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        if s.is_terminal() {
            bump(&mut self.terminal);
            if !parent {
                bump(&mut self.countable_terminal);
            }
        }
        if is_active(s) {
            bump(&mut self.active);
        }
        if s == StepStatus::AwaitingInput {
            bump(&mut self.awaiting);
        }
        if s == StepStatus::Running && !parent {
            if add {
                self.running.insert(key.clone());
            } else {
                self.running.remove(key);
            }
        }
    }

    /// Whether every step record is terminal.
    pub(super) fn all_done(&self) -> bool {
        self.terminal == self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::key;

    #[test]
    fn tally_follows_changes() {
        let (a, p) = (key("a"), key("p"));
        let mut t = Tally::default();
        t.change(&a, false, None, StepStatus::Pending);
        t.change(&p, true, None, StepStatus::Pending);
        t.change(&a, false, Some(StepStatus::Pending), StepStatus::Running);
        t.change(&p, true, Some(StepStatus::Pending), StepStatus::Running);
        assert_eq!((t.all, t.countable, t.active), (2, 1, 2));
        assert_eq!(t.running.iter().collect::<Vec<_>>(), ["a"]);
        t.change(&a, false, Some(StepStatus::Running), StepStatus::Success);
        assert!(!t.all_done());
        assert_eq!((t.countable_terminal, t.active), (1, 1));
        t.change(&p, true, Some(StepStatus::Running), StepStatus::Success);
        assert!(t.all_done());
        assert!(t.running.is_empty());
    }
}
