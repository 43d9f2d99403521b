//! `{{var}}` templates: a step's config may hold text with placeholders
//! that the step fills at run time (a notification's subject, a drafted
//! reply).
//!
//! A template is checked once, when the config is read ([`Variables::check`]),
//! so a typo fails the step at its first attempt with the variables it could
//! have used, instead of sending a message with a hole in it. Rendering
//! ([`render`]) is one pass over the template: a value that itself contains
//! `{{...}}` is copied as it is, never expanded.

use std::fmt;

/// The variables a template may use.
#[derive(Debug, Clone, Copy)]
pub struct Variables {
    names: &'static [&'static str],
    prefixes: &'static [&'static str],
    padded: bool,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    Unclosed {
        /// The whole template.
        template: String,
    },
    /// A placeholder that names no variable.
    UnknownVariable {
        /// The name between the braces.
        name: String,
        /// What could have been used.
        known: Vec<String>,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed { template } => write!(f, "template `{template}` has `{{{{` without `}}}}`"),
            TemplateError::UnknownVariable { name, known } => {
                write!(f, "unknown template variable `{{{{{name}}}}}`; known: {}", known.join(", "))
            }
        }
    }
}

impl std::error::Error for TemplateError {}

impl Variables {
    /// Exactly these variable names, written without spaces (`{{subject}}`).
    pub const fn new(names: &'static [&'static str]) -> Self {
        Variables { names, prefixes: &[], padded: false }
    }

    /// Also any name that starts with one of `prefixes` and goes on
    /// (`meta.` allows `{{meta.urgency}}`).
    pub const fn with_prefixes(self, prefixes: &'static [&'static str]) -> Self {
        Variables { prefixes, ..self }
    }

    /// Also allows spaces inside the braces (`{{ job_id }}`).
    pub const fn padded(self) -> Self {
        Variables { padded: true, ..self }
    }

    /// Whether `name` (as written between the braces) is a variable.
    fn allows(&self, name: &str) -> bool {
        let name = if self.padded { name.trim() } else { name };
        self.names.contains(&name)
            || self.prefixes.iter().any(|p| name.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
    }

    /// Checks that every placeholder of `template` is closed and names a
    /// variable.
    ///
    /// # Errors
    ///
    /// The first unclosed or unknown placeholder.
    pub fn check(&self, template: &str) -> Result<(), TemplateError> {
        for piece in pieces(template) {
            match piece {
                Piece::Text(_) => {}
                Piece::Unclosed(_) => return Err(TemplateError::Unclosed { template: template.to_string() }),
                Piece::Placeholder(name) if self.allows(name) => {}
                Piece::Placeholder(name) => {
                    let shown = if self.padded { name.trim() } else { name };
                    let known = self.names.iter().map(|n| n.to_string());
                    let prefixed = self.prefixes.iter().map(|p| format!("{p}<key>"));
                    return Err(TemplateError::UnknownVariable {
                        name: shown.to_string(),
                        known: known.chain(prefixed).collect(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Fills every `{{name}}` of `template` with `value(name)` (the name without
/// surrounding spaces; an empty string when `value` has none). An unclosed
/// `{{` and what follows it is copied as it is.
pub fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) | Piece::Unclosed(text) => out.push_str(text),
            Piece::Placeholder(name) => out.push_str(&value(name.trim()).unwrap_or_default()),
        }
    }
    out
}

/// A part of a template.
enum Piece<'a> {
    /// Text to copy.
    Text(&'a str),
    /// What is between `{{` and the next `}}`.
    Placeholder(&'a str),
    /// A `{{` with no `}}` after it, and the rest of the template.
    Unclosed(&'a str),
}

/// The template cut into pieces, in order.
fn pieces(template: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = template;
    let mut pending: Option<Piece<'_>> = None;
    std::iter::from_fn(move || {
        if let Some(piece) = pending.take() {
            return Some(piece);
        }
        if rest.is_empty() {
            return None;
        }
        let Some(start) = rest.find("{{") else {
            return Some(Piece::Text(std::mem::take(&mut rest)));
        };
        let (before, open) = rest.split_at(start);
        let after = &open[2..];
        let next = match after.find("}}") {
            Some(end) => {
                rest = &after[end + 2..];
                Piece::Placeholder(&after[..end])
            }
            None => {
                rest = "";
                Piece::Unclosed(open)
            }
        };
        if before.is_empty() {
            Some(next)
        } else {
            pending = Some(next);
            Some(Piece::Text(before))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STRICT: Variables = Variables::new(&["subject", "category"]);
    const LOOSE: Variables = Variables::new(&["job_id", "summary"]).with_prefixes(&["meta."]).padded();

    fn values(name: &str) -> Option<String> {
        match name {
            "subject" => Some("Refund {{category}}".into()),
            "category" => Some("billing".into()),
            "job_id" => Some("j".into()),
            _ => name.strip_prefix("meta.").map(|key| format!("<{key}>")),
        }
    }

    #[test]
    fn rendering_fills_every_placeholder_once() {
        assert_eq!(render("About {{subject}} ({{category}})", values), "About Refund {{category}} (billing)");
        assert_eq!(render("{{ job_id }}/{{meta.urgency}}: {{nope}}.", values), "j/<urgency>: .");
        assert_eq!(render("left {{ open", values), "left {{ open");
        assert_eq!(render("", values), "");
        assert_eq!(render("{{category}}{{category}}", values), "billingbilling");
    }

    #[test]
    fn checking_refuses_unknown_and_unclosed_placeholders() {
        assert_eq!(STRICT.check("Hello {{subject}}, {{category}}"), Ok(()));
        assert_eq!(STRICT.check("no placeholders"), Ok(()));
        let error = STRICT.check("{{ subject }}").unwrap_err();
        assert_eq!(error.to_string(), "unknown template variable `{{ subject }}`; known: subject, category");
        let error = STRICT.check("{{subject").unwrap_err();
        assert_eq!(error.to_string(), "template `{{subject` has `{{` without `}}`");

        assert_eq!(LOOSE.check("{{ job_id }} {{meta.urgency}} {{summary}}"), Ok(()));
        let error = LOOSE.check("{{ sumary }}").unwrap_err();
        assert_eq!(error.to_string(), "unknown template variable `{{sumary}}`; known: job_id, summary, meta.<key>");
        assert!(LOOSE.check("{{meta.}}").is_err(), "a prefix alone names nothing");
    }
}
