//! Graph checks (phase 1: ids, `needs`, cycles) and host checks (phase 2).

use std::collections::{BTreeMap, BTreeSet};

use super::suggest::did_you_mean;
use super::units::{format_duration, format_size};
use super::{Diagnostic, HostFacts, Span, StepSpec, Workflow, WorkflowError};

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

/// Checks a parsed workflow against what this host offers (phase 2): plugins exist, limits and
/// timeouts are within the host's ceilings, grant names are known, and every grant a plugin
/// needs is given to the step. Values inherited from `defaults` are reported once, at
/// `defaults`.
///
/// # Errors
///
/// [`WorkflowError::Invalid`] listing every problem found, sorted by position.
pub fn check_against_host(workflow: &Workflow, host: &HostFacts) -> Result<(), WorkflowError> {
    let mut cx = HostCheck { workflow, host, diagnostics: Vec::new(), reported_defaults: BTreeSet::new() };
    for step in &workflow.steps {
        cx.plugin(step);
        cx.limits(step);
        cx.grant_names(step);
    }
    WorkflowError::from_diagnostics(&workflow.source, cx.diagnostics)
}

struct HostCheck<'a> {
    workflow: &'a Workflow,
    host: &'a HostFacts,
    diagnostics: Vec<Diagnostic>,
    /// Spans in `defaults` already reported (a default is reported once, not once per step).
    reported_defaults: BTreeSet<Span>,
}

impl HostCheck<'_> {
    fn error(&mut self, span: Span, message: String) {
        self.diagnostics.push(Diagnostic::new(self.workflow.source.as_str(), span, message));
    }

    fn plugin(&mut self, step: &StepSpec) {
        let span = step.spans.plugin;
        if !self.host.plugins.contains_key(&step.plugin) {
            let known: Vec<&str> = self.host.plugins.keys().map(String::as_str).collect();
            let hint = did_you_mean(&step.plugin, known.iter().copied());
            let list = if known.is_empty() {
                "; this host has no plugins".to_owned()
            } else {
                let sep = if hint.is_empty() { ";" } else { "" };
                format!("{sep} known plugins: {}", known.join(", "))
            };
            self.error(span, format!("unknown plugin `{}` in step `{}`{hint}{list}", step.plugin, step.id));
        }
        // A plugin's capability imports say what it *may* use; each call is
        // checked against the step's grants when it is made, so a step need
        // not grant what its config does not use. The grants themselves must
        // make sense now.
        if let Err(message) = crate::capabilities::StepGrants::from_grants(&step.grants) {
            let span = step.spans.grants.unwrap_or(step.span);
            self.error(span, format!("step `{}`: {message}", step.id));
        }
    }

    /// Reports a value above a ceiling, once at `defaults` if that is where it comes from.
    fn above(&mut self, step: &StepSpec, span: Option<Span>, inherited: bool, what: &str, value: &str, ceiling: &str) {
        let span = span.unwrap_or(step.span);
        if inherited {
            if self.reported_defaults.insert(span) {
                self.error(span, format!("defaults.{what} {value} is above this host's ceiling of {ceiling}"));
            }
        } else {
            self.error(
                span,
                format!("{what} {value} for step `{}` is above this host's ceiling of {ceiling}", step.id),
            );
        }
    }

    fn limits(&mut self, step: &StepSpec) {
        let ceilings = self.host.ceilings;
        let defaults = &self.workflow.defaults.spans;
        let inherited = |span: Option<Span>, default: Option<Span>| span.is_some() && span == default;
        if let Some(memory) = step.limits.memory.filter(|m| *m > ceilings.memory) {
            let span = step.spans.limits.memory;
            let from_defaults = inherited(span, defaults.limits.memory);
            self.above(step, span, from_defaults, "limits.memory", &format_size(memory), &format_size(ceilings.memory));
        }
        if let (Some(fuel), Some(ceiling)) = (step.limits.fuel, ceilings.fuel)
            && fuel > ceiling
        {
            let span = step.spans.limits.fuel;
            let from_defaults = inherited(span, defaults.limits.fuel);
            self.above(step, span, from_defaults, "limits.fuel", &fuel.to_string(), &ceiling.to_string());
        }
        if let Some(output) = step.limits.output.filter(|o| *o > ceilings.output) {
            let span = step.spans.limits.output;
            let from_defaults = inherited(span, defaults.limits.output);
            self.above(step, span, from_defaults, "limits.output", &format_size(output), &format_size(ceilings.output));
        }
        if let Some(timeout) = step.timeout.filter(|t| *t > ceilings.timeout) {
            let span = step.spans.timeout;
            let from_defaults = inherited(span, defaults.timeout);
            self.above(
                step,
                span,
                from_defaults,
                "timeout",
                &format_duration(timeout),
                &format_duration(ceilings.timeout),
            );
        }
        if let Some(map) = step.map.filter(|m| m.concurrency > ceilings.map_concurrency) {
            self.above(
                step,
                step.spans.map,
                false,
                "map.concurrency",
                &map.concurrency.to_string(),
                &ceilings.map_concurrency.to_string(),
            );
        }
    }

    fn grant_names(&mut self, step: &StepSpec) {
        for (name, _) in step.grants.iter() {
            if self.host.known_grants.contains(name) {
                continue;
            }
            let known: Vec<&str> = self.host.known_grants.iter().map(String::as_str).collect();
            let hint = did_you_mean(name, known.iter().copied());
            let list = if known.is_empty() {
                "; this host knows no grants".to_owned()
            } else {
                let sep = if hint.is_empty() { ";" } else { "" };
                format!("{sep} known grants: {}", known.join(", "))
            };
            let span = step.grants.span(name).unwrap_or(step.span);
            self.error(span, format!("unknown grant `{name}` in step `{}`{hint}{list}", step.id));
        }
    }
}
