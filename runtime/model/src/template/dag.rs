//! The step graph formed by `needs`: topological order, cycles, and the
//! transitive upstream of each step.
//!
//! Everything is linear in the graph's size: the transitive upstream is
//! not stored per step (that is quadratic in a long chain) but walked when
//! asked for.

use super::spec::WorkflowTemplate;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A dependency cycle, as step ids in order: each step needs the next, and
/// the last needs the first. Starts at the cycle's earliest step in the
/// template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl fmt::Display for Cycle {
    /// `a -> b -> c -> a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in &self.0 {
            write!(f, "{id} -> ")?;
        }
        f.write_str(self.0.first().map_or("", String::as_str))
    }
}

/// The step graph.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dag {
    /// Template order of the ids.
    ids: Vec<String>,
    /// Position of each id in `ids`.
    index: BTreeMap<String, usize>,
    /// Direct needs that name a known step, deduplicated, in written order.
    needs: BTreeMap<String, Vec<String>>,
    /// The same as indices into `ids`.
    edges: Vec<Vec<usize>>,
    /// Topological order (only the steps outside cycles when there are some).
    order: Vec<String>,
    cycles: Vec<Cycle>,
}

impl Dag {
    /// Builds the graph from `(id, needs)` pairs in template order. Needs
    /// naming unknown steps are ignored (validation reports them); of
    /// duplicate ids the first wins.
    pub fn build<'a, N>(steps: impl IntoIterator<Item = (&'a str, N)>) -> Self
    where
        N: IntoIterator<Item = &'a String>,
    {
        let mut ids: Vec<String> = Vec::new();
        let mut raw: Vec<Vec<String>> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (id, needs) in steps {
            if index.contains_key(id) {
                continue;
            }
            index.insert(id.to_owned(), ids.len());
            ids.push(id.to_owned());
            raw.push(needs.into_iter().cloned().collect());
        }
        // Direct needs as indices, known and deduplicated.
        let edges: Vec<Vec<usize>> = raw
            .iter()
            .map(|needs| {
                let mut seen = BTreeSet::new();
                needs
                    .iter()
                    .filter_map(|n| index.get(n).copied())
                    .filter(|i| seen.insert(*i))
                    .collect()
            })
            .collect();

        let order = kahn(&edges);
        let mut placed = vec![false; ids.len()];
        for &i in &order {
            placed[i] = true;
        }
        let cycles = find_cycles(&edges, &placed)
            .into_iter()
            .map(|c| Cycle(c.into_iter().map(|i| ids[i].clone()).collect()))
            .collect();

        let needs = edges
            .iter()
            .enumerate()
            .map(|(i, e)| (ids[i].clone(), e.iter().map(|&j| ids[j].clone()).collect()))
            .collect();
        Self {
            order: order.into_iter().map(|i| ids[i].clone()).collect(),
            ids,
            index,
            needs,
            edges,
            cycles,
        }
    }

    /// The graph of a template's steps.
    pub fn of_template(t: &WorkflowTemplate) -> Self {
        Self::build(t.steps.iter().map(|s| (s.id.as_str(), &s.needs)))
    }

    /// Steps in an order where every step comes after all it needs; ties
    /// keep template order. Steps in or behind a cycle are missing.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The dependency cycles, one per group of steps that need each other.
    pub fn cycles(&self) -> &[Cycle] {
        &self.cycles
    }

    /// Whether the graph has no cycle.
    pub fn is_acyclic(&self) -> bool {
        self.cycles.is_empty()
    }

    /// The known steps `step` needs directly.
    pub fn needs_of(&self, step: &str) -> &[String] {
        self.needs.get(step).map_or(&[], Vec::as_slice)
    }

    /// Every step `step` needs, directly or transitively (itself only if it
    /// is in a cycle). Empty for an unknown step.
    pub fn upstream_of(&self, step: &str) -> BTreeSet<String> {
        match self.index.get(step) {
            Some(&i) => reachable(&self.edges, i)
                .into_iter()
                .map(|j| self.ids[j].clone())
                .collect(),
            None => BTreeSet::new(),
        }
    }

    /// Whether `step` needs `other`, directly or transitively. Walks only
    /// until it finds it: linear in the graph's size at worst.
    pub fn is_upstream(&self, other: &str, step: &str) -> bool {
        let (Some(&from), Some(&target)) = (self.index.get(step), self.index.get(other)) else {
            return false;
        };
        let mut seen = vec![false; self.ids.len()];
        let mut stack: Vec<usize> = self.edges[from].clone();
        while let Some(i) = stack.pop() {
            if i == target {
                return true;
            }
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(self.edges[i].iter().copied());
            }
        }
        false
    }

    /// Every step that needs `step`, directly or transitively, in template
    /// order.
    pub fn downstream_of(&self, step: &str) -> Vec<&str> {
        let Some(&target) = self.index.get(step) else {
            return Vec::new();
        };
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.ids.len()];
        for (i, needs) in self.edges.iter().enumerate() {
            for &j in needs {
                dependents[j].push(i);
            }
        }
        let found = reachable(&dependents, target);
        self.ids
            .iter()
            .enumerate()
            .filter(|(i, _)| found.contains(i))
            .map(|(_, id)| id.as_str())
            .collect()
    }
}

/// Kahn's algorithm; ready steps are taken in template order.
fn kahn(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut waiting: Vec<usize> = edges.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, needs) in edges.iter().enumerate() {
        for &j in needs {
            dependents[j].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order
}

/// Distinct cycles among the steps Kahn could not place. Each such step
/// needs at least one other unplaced step, so following needs from it
/// always ends in a cycle.
fn find_cycles(edges: &[Vec<usize>], placed: &[bool]) -> Vec<Vec<usize>> {
    let mut seen = vec![false; edges.len()];
    let mut cycles = Vec::new();
    for start in 0..edges.len() {
        if placed[start] || seen[start] {
            continue;
        }
        let mut path: Vec<usize> = Vec::new();
        let mut on_path = vec![false; edges.len()];
        let mut cur = start;
        loop {
            if on_path[cur] {
                let from = path.iter().position(|&p| p == cur).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                if let Some(min_pos) = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, i)| **i)
                    .map(|(p, _)| p)
                {
                    cycle.rotate_left(min_pos);
                }
                cycles.push(cycle);
                break;
            }
            if seen[cur] {
                break; // leads into a cycle already reported
            }
            seen[cur] = true;
            on_path[cur] = true;
            path.push(cur);
            match edges[cur].iter().find(|&&j| !placed[j]) {
                Some(&next) => cur = next,
                None => break,
            }
        }
    }
    cycles
}

/// Indices reachable from `from` through needs (not `from` itself unless
/// on a cycle).
fn reachable(edges: &[Vec<usize>], from: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<usize> = edges[from].clone();
    while let Some(i) = stack.pop() {
        if out.insert(i) {
            stack.extend(edges[i].iter().copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(steps: &[(&str, &[&str])]) -> Dag {
        let owned: Vec<(String, Vec<String>)> = steps
            .iter()
            .map(|(id, needs)| {
                (
                    (*id).to_owned(),
                    needs.iter().map(|n| (*n).to_owned()).collect(),
                )
            })
            .collect();
        Dag::build(owned.iter().map(|(id, needs)| (id.as_str(), needs)))
    }

    #[test]
    fn order_respects_needs_and_keeps_template_order() {
        let d = dag(&[("c", &["a", "b"]), ("a", &[]), ("b", &["a"]), ("x", &[])]);
        assert_eq!(d.order(), ["a", "b", "c", "x"]);
        assert!(d.is_acyclic());
        assert_eq!(
            d.upstream_of("c")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(d.upstream_of("a").is_empty());
        assert!(d.upstream_of("nope").is_empty());
        assert_eq!(d.needs_of("c"), ["a", "b"]);
        assert_eq!(d.downstream_of("a"), ["c", "b"]);
    }

    #[test]
    fn cycles_are_named_in_order() {
        let d = dag(&[
            ("start", &[]),
            ("a", &["c", "start"]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("after", &["c"]),
        ]);
        assert_eq!(d.cycles().len(), 1);
        // a needs c, c needs b, b needs a.
        assert_eq!(d.cycles()[0].to_string(), "a -> c -> b -> a");
        assert_eq!(d.order(), ["start"]);
        assert!(d.upstream_of("a").contains("a"));
    }

    #[test]
    fn separate_cycles_and_self_needs_are_all_reported() {
        let d = dag(&[("s", &["s"]), ("x", &["y"]), ("y", &["x"]), ("z", &["x"])]);
        let names: Vec<String> = d.cycles().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["s -> s", "x -> y -> x"]);
    }

    #[test]
    fn unknown_needs_and_duplicates_are_ignored() {
        let d = dag(&[("a", &["ghost", "b", "b"]), ("b", &[]), ("a", &["zzz"])]);
        assert_eq!(d.order(), ["b", "a"]);
        assert_eq!(d.needs_of("a"), ["b"]);
    }
}
