//! Graph checks: duplicate ids, `needs` that name no step, and dependency cycles.

use std::collections::BTreeMap;

use super::Span;
use super::suggest::did_you_mean;

/// What the graph checks need to know about one step.
pub(crate) struct GraphNode<'a> {
    /// The step's id and where it is, if it has one.
    pub(crate) id: Option<(&'a str, Span)>,
    /// For an invalid id, the valid id suggested for it: `needs` naming it are not reported
    /// again (the invalid id is).
    pub(crate) fixed_id: Option<String>,
    /// How messages name the step (`step `load`` or `step #2`).
    pub(crate) label: &'a str,
    /// The `needs` entries, without duplicates.
    pub(crate) needs: &'a [(String, Span)],
}

/// Duplicate ids, unknown or self `needs`, and dependency cycles, as `(span, message)`.
pub(crate) fn graph_problems(nodes: &[GraphNode<'_>]) -> Vec<(Span, String)> {
    let mut problems = Vec::new();

    // Ids: the first occurrence wins.
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some((id, span)) = node.id else { continue };
        match index.get(id).and_then(|&first| nodes.get(first)) {
            Some(first) => {
                let line = first.id.map_or(0, |(_, s)| s.line);
                problems
                    .push((span, format!("duplicate step id `{id}`; it is already used by the step at line {line}")));
            }
            None => {
                index.insert(id, i);
            }
        }
    }
    let mut fixed: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Some(id) = node.fixed_id.as_deref()
            && !index.contains_key(id)
        {
            fixed.entry(id).or_insert(i);
        }
    }
    let mut known: Vec<&str> = index.keys().copied().collect();
    known.sort_by_key(|id| index.get(id).copied().unwrap_or(usize::MAX));

    // Needs, and the edges they make (step -> step it needs).
    let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let own = node.id.map(|(id, _)| id);
        for (need, span) in node.needs {
            if own == Some(need.as_str()) {
                problems.push((*span, format!("{} needs itself; remove `{need}` from its `needs`", node.label)));
                continue;
            }
            match index.get(need.as_str()).or_else(|| fixed.get(need.as_str())) {
                Some(&j) if j == i => {}
                Some(&j) => {
                    if let Some(list) = edges.get_mut(i) {
                        list.push((j, *span));
                    }
                }
                None => {
                    let hint = did_you_mean(need, known.iter().copied());
                    let message = if hint.is_empty() {
                        format!("{} needs unknown step `{need}`; the steps are {}", node.label, known.join(", "))
                    } else {
                        format!("{} needs unknown step `{need}`{hint}", node.label)
                    };
                    problems.push((*span, message));
                }
            }
        }
    }

    for cycle in find_cycles(&edges) {
        let names: Vec<&str> =
            cycle.iter().map(|&i| nodes.get(i).and_then(|n| n.id).map_or("?", |(id, _)| id)).collect();
        let (Some(&first), Some(&second)) = (cycle.first(), cycle.get(1)) else {
            continue;
        };
        let span = edges
            .get(first)
            .and_then(|list| list.iter().find(|(j, _)| *j == second))
            .map(|(_, span)| *span)
            .unwrap_or_default();
        problems
            .push((span, format!("dependency cycle: {}; remove one of these `needs` to break it", names.join(" -> "))));
    }
    problems
}

/// Every cycle needed to explain why the graph is not a DAG, each as a path that starts and ends
/// at the same node (`[a, b, a]`), starting at its earliest node.
fn find_cycles(edges: &[Vec<(usize, Span)>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut removed = vec![false; n];
    let mut cycles = Vec::new();
    loop {
        // Peel off every node whose needs can all be satisfied.
        let mut done = removed.clone();
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..n {
                let ready = !done.get(i).copied().unwrap_or(true)
                    && edges.get(i).is_some_and(|list| list.iter().all(|(j, _)| done.get(*j).copied().unwrap_or(true)));
                if ready {
                    if let Some(d) = done.get_mut(i) {
                        *d = true;
                    }
                    changed = true;
                }
            }
        }
        // Every remaining node needs another remaining node: walk until a node repeats.
        let Some(start) = (0..n).find(|&i| !done.get(i).copied().unwrap_or(true)) else {
            return cycles;
        };
        let mut path = vec![start];
        let mut current = start;
        let cycle = loop {
            let Some(&(next, _)) =
                edges.get(current).and_then(|list| list.iter().find(|(j, _)| !done.get(*j).copied().unwrap_or(true)))
            else {
                // Cannot happen: a remaining node always has a remaining need.
                return cycles;
            };
            if let Some(pos) = path.iter().position(|&p| p == next) {
                break path.split_off(pos);
            }
            path.push(next);
            current = next;
        };
        // Rotate so that the earliest node comes first, then close the loop.
        let earliest = cycle.iter().enumerate().min_by_key(|(_, node)| **node).map_or(0, |(pos, _)| pos);
        let mut rotated = cycle;
        rotated.rotate_left(earliest);
        for &node in &rotated {
            if let Some(r) = removed.get_mut(node) {
                *r = true;
            }
        }
        if let Some(&first) = rotated.first() {
            rotated.push(first);
        }
        cycles.push(rotated);
    }
}
