//! The one load-time check: every reason a parsed workflow cannot run on
//! this host, reported with `file:line:column` before any job starts.
//!
//! The workflow module owns what is wrong with a file on its own (syntax,
//! fields, `needs`, cycles). This module owns what is wrong with it *here*:
//! a plugin this host does not have or cannot use as a step (an unknown
//! import, an unsupported `weft:plugin` version), a grant that is malformed,
//! unknown, or one the step's component cannot use, a granted secret the
//! host has no value for, `limits.fuel` on a host that does not meter fuel,
//! and values above the host's ceilings. It also resolves each step's grants
//! (once) into the [`StepGrants`] the capabilities check on every call.
//!
//! It is pure: the host gathers [`HostFacts`] (compiling the plugins the
//! workflow names) and this module decides. It never compiles, reads files
//! or touches wasmtime.
//!
//! A component's capability imports say what it *may* use, so an import
//! without a grant is not an error: `notify` imports `http` and `email` and
//! needs neither to print to stdout, and forcing a grant would hand a step
//! more than it uses. A grant whose capability the component does not import
//! is a warning: it can have no effect, and is usually meant for another step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::capabilities::{self, ImportClass, StepGrants};
use crate::workflow::{Diagnostic, Span, StepSpec, Workflow, did_you_mean, format_duration, format_size};

#[cfg(test)]
mod tests;

/// The most a step may ask for on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceilings {
    /// Maximum `limits.memory`, in bytes.
    pub memory: u64,
    /// Maximum `limits.fuel`, if fuel is bounded.
    pub fuel: Option<u64>,
    /// Maximum `limits.output`, in bytes.
    pub output: u64,
    /// Maximum `timeout`.
    pub timeout: Duration,
    /// Maximum `map.concurrency`.
    pub map_concurrency: usize,
}

/// What the host knows about one registered plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginFacts {
    /// Registered, but no step of this workflow uses it (not compiled).
    Registered,
    /// Compiled: it can be used as a step.
    Usable {
        /// Its imports, as the component names them (`weft:plugin/http@0.1.0`).
        imports: Vec<String>,
    },
    /// It cannot be used as a step, and why (from the engine).
    Unusable(String),
}

/// What a host offers, for [`check`].
pub struct HostFacts<'a> {
    /// Registered plugins by name.
    pub plugins: BTreeMap<String, PluginFacts>,
    /// Upper bounds on what a step may ask for.
    pub ceilings: Ceilings,
    /// Whether the engine meters fuel (`limits.fuel` needs it).
    pub fuel_metering: bool,
    /// Whether the host has a value for a secret; `None` when missing
    /// secrets are not this check's business (`weft validate` checks a file
    /// on a machine that need not hold them).
    pub has_secret: Option<&'a dyn Fn(&str) -> bool>,
}

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct LoadCheck {
    /// Each step's resolved grants (steps whose grants are malformed are missing).
    pub grants: BTreeMap<String, StepGrants>,
    /// Problems that stop the workflow from loading, sorted by position.
    pub errors: Vec<Diagnostic>,
    /// Problems that do not (a grant with no effect), sorted by position.
    pub warnings: Vec<Diagnostic>,
}

/// Checks a parsed workflow against what this host offers. Values inherited
/// from `defaults` are reported once, at `defaults`.
pub fn check(workflow: &Workflow, host: &HostFacts<'_>) -> LoadCheck {
    let mut cx = Check { workflow, host, out: LoadCheck::default(), reported_defaults: BTreeSet::new() };
    for step in &workflow.steps {
        cx.grants(step);
        cx.fuel(step);
        cx.plugin(step);
        cx.limits(step);
        cx.grant_names(step);
    }
    for list in [&mut cx.out.errors, &mut cx.out.warnings] {
        list.sort_by_key(|d| d.span);
        list.dedup();
    }
    cx.out
}

struct Check<'a> {
    workflow: &'a Workflow,
    host: &'a HostFacts<'a>,
    out: LoadCheck,
    /// Spans in `defaults` already reported (a default is reported once, not once per step).
    reported_defaults: BTreeSet<Span>,
}

impl Check<'_> {
    fn error(&mut self, span: Span, message: String) {
        self.out.errors.push(Diagnostic::new(self.workflow.source.as_str(), span, message));
    }

    fn warning(&mut self, span: Span, message: String) {
        self.out.warnings.push(Diagnostic::new(self.workflow.source.as_str(), span, message));
    }

    /// Resolves the step's grants; a granted secret must exist on this host.
    fn grants(&mut self, step: &StepSpec) {
        let span = step.spans.grants.unwrap_or(step.span);
        let grants = match StepGrants::from_grants(&step.grants) {
            Ok(grants) => grants,
            Err(message) => {
                self.error(span, format!("step `{}`: {message}", step.id));
                return;
            }
        };
        if let Some(has_secret) = self.host.has_secret {
            for secret in grants.secrets.iter().filter(|name| !has_secret(name)) {
                self.error(
                    span,
                    format!(
                        "step `{}` is granted secret `{secret}`, but this host has no value for it; \
                         set the environment variable `{}` or add `{secret}` to the secrets file",
                        step.id,
                        capabilities::secrets::environment_variable(secret)
                    ),
                );
            }
        }
        self.out.grants.insert(step.id.clone(), grants);
    }

    fn fuel(&mut self, step: &StepSpec) {
        let known_plugin = self.host.plugins.contains_key(&step.plugin);
        if known_plugin && step.limits.fuel.is_some() && !self.host.fuel_metering {
            self.error(
                step.spans.limits.fuel.unwrap_or(step.span),
                format!(
                    "step `{}` sets `limits.fuel`, but this host does not meter fuel; \
                     enable fuel metering (`weft run --fuel`) or remove the limit",
                    step.id
                ),
            );
        }
    }

    /// The plugin exists and can be a step; every grant is one its component can use.
    fn plugin(&mut self, step: &StepSpec) {
        let span = step.spans.plugin;
        match self.host.plugins.get(&step.plugin) {
            None => {
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
            Some(PluginFacts::Unusable(why)) => {
                let message = format!("step `{}`: {why}", step.id);
                self.error(span, message);
            }
            Some(PluginFacts::Usable { imports }) if self.out.grants.contains_key(&step.id) => {
                let imported: BTreeSet<&str> = imports
                    .iter()
                    .filter_map(|import| match capabilities::classify_import(import) {
                        ImportClass::Capability(capability) => capability.grant,
                        _ => None,
                    })
                    .collect();
                for (name, _) in step.grants.iter() {
                    let Some(capability) = capabilities::CAPABILITIES.iter().find(|c| c.grant == Some(name)) else {
                        continue; // an unknown grant, reported by `grant_names`
                    };
                    if !imported.contains(name) {
                        let span = step.grants.span(name).unwrap_or(step.span);
                        self.warning(
                            span,
                            format!(
                                "step `{}` is granted `{name}`, but its plugin `{}` does not import `{}`, \
                                 so the grant has no effect; remove it or move it to the step that needs it",
                                step.id, step.plugin, capability.interface
                            ),
                        );
                    }
                }
            }
            // Registered only, or grants too malformed to compare (reported by `grants`).
            Some(PluginFacts::Usable { .. } | PluginFacts::Registered) => {}
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
            if capabilities::known_grants().any(|known| known == name) {
                continue;
            }
            let known: BTreeSet<&str> = capabilities::known_grants().collect();
            let hint = did_you_mean(name, known.iter().copied());
            let sep = if hint.is_empty() { ";" } else { "" };
            let list = format!("{sep} known grants: {}", known.into_iter().collect::<Vec<_>>().join(", "));
            let span = step.grants.span(name).unwrap_or(step.span);
            self.error(span, format!("unknown grant `{name}` in step `{}`{hint}{list}", step.id));
        }
    }
}
