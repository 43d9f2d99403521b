//! Triage as plain Rust: reading a ticket (JSON or text), transparent
//! keyword rules for category and urgency (weights configurable in the
//! workflow, every match explained), the LLM prompt and the parsing of its
//! answer, and drafting the reply from a template.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_plugin_kit::config::ConfigFields;
use weft_plugin_kit::template::{self, Variables};

/// The step's `config` block.
#[derive(Debug, Clone)]
pub struct Config {
    /// `rules` (offline, the default) or `llm`.
    pub mode: Mode,
    /// Category -> keyword -> weight. The built-in set when absent.
    pub categories: BTreeMap<String, BTreeMap<String, u32>>,
    /// The category when no keyword matches.
    pub default_category: String,
    /// Urgency levels, most urgent first; the first whose score reaches its
    /// threshold wins.
    pub urgency: Vec<UrgencyLevel>,
    /// The urgency when no level's threshold is reached.
    pub default_urgency: String,
    /// Reply template per category (`default` for the rest).
    pub replies: BTreeMap<String, String>,
    /// For `mode: llm`: extra instructions for the model.
    pub instructions: Option<String>,
    /// For `mode: llm`: the model to ask for (the host's default when absent).
    pub model: Option<String>,
}

/// How the ticket is classified and the reply drafted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keyword rules, offline.
    #[default]
    Rules,
    /// The host's `llm` capability.
    Llm,
}

/// One urgency level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrgencyLevel {
    /// Its name (`critical`, `high`).
    pub name: String,
    /// The score needed.
    pub threshold: u32,
    /// Keyword -> weight.
    pub keywords: BTreeMap<String, u32>,
}

fn default_categories() -> BTreeMap<String, BTreeMap<String, u32>> {
    let table: &[(&str, &[(&str, u32)])] = &[
        (
            "billing",
            &[
                ("invoice", 3),
                ("refund", 3),
                ("charged", 3),
                ("charge", 2),
                ("payment", 2),
                ("billing", 3),
                ("subscription", 1),
                ("price", 1),
            ],
        ),
        (
            "account",
            &[
                ("password", 3),
                ("login", 3),
                ("log in", 3),
                ("sign in", 3),
                ("locked", 2),
                ("2fa", 3),
                ("account", 1),
                ("username", 2),
            ],
        ),
        (
            "outage",
            &[
                ("outage", 4),
                ("down", 2),
                ("not loading", 3),
                ("unavailable", 3),
                ("500", 2),
                ("timeout", 2),
                ("cannot access", 2),
            ],
        ),
        (
            "bug",
            &[
                ("bug", 3),
                ("error", 2),
                ("crash", 3),
                ("broken", 2),
                ("exception", 2),
                ("wrong", 1),
                ("doesn't work", 2),
                ("does not work", 2),
            ],
        ),
        (
            "feature-request",
            &[
                ("feature", 3),
                ("would be nice", 3),
                ("suggestion", 3),
                ("could you add", 3),
                ("request", 1),
                ("wish", 2),
            ],
        ),
        ("privacy", &[("gdpr", 4), ("delete my data", 4), ("personal data", 3), ("privacy", 3), ("data export", 3)]),
    ];
    table
        .iter()
        .map(|(name, words)| (name.to_string(), words.iter().map(|(w, n)| (w.to_string(), *n)).collect()))
        .collect()
}

fn default_category() -> String {
    "general".into()
}

fn default_urgency() -> Vec<UrgencyLevel> {
    let level = |name: &str, threshold, words: &[(&str, u32)]| UrgencyLevel {
        name: name.into(),
        threshold,
        keywords: words.iter().map(|(w, n)| (w.to_string(), *n)).collect(),
    };
    vec![
        level(
            "critical",
            4,
            &[
                ("outage", 4),
                ("data loss", 4),
                ("security", 3),
                ("breach", 4),
                ("production", 2),
                ("all users", 3),
                ("down", 2),
            ],
        ),
        level(
            "high",
            3,
            &[
                ("urgent", 3),
                ("asap", 3),
                ("immediately", 3),
                ("blocked", 2),
                ("cannot", 1),
                ("today", 1),
                ("deadline", 2),
            ],
        ),
    ]
}

fn default_urgency_name() -> String {
    "normal".into()
}

fn default_replies() -> BTreeMap<String, String> {
    let mut replies = BTreeMap::new();
    replies.insert(
        "default".to_string(),
        "Hello,\n\nThank you for contacting us about \"{{subject}}\". We have filed your request as {{category}} \
         with {{urgency}} priority, and a member of our team will follow up shortly.\n\nBest regards,\nSupport"
            .to_string(),
    );
    replies.insert(
        "billing".to_string(),
        "Hello,\n\nThank you for reaching out about \"{{subject}}\". We are reviewing the charges on your account \
         and will confirm any correction or refund as soon as the review is complete.\n\nBest regards,\nBilling support"
            .to_string(),
    );
    replies.insert(
        "outage".to_string(),
        "Hello,\n\nThank you for reporting \"{{subject}}\". We are investigating the service disruption with \
         {{urgency}} priority and will update you as soon as it is resolved.\n\nBest regards,\nSupport"
            .to_string(),
    );
    replies
}

impl Config {
    /// Parses and checks the config.
    ///
    /// # Errors
    ///
    /// A message a workflow author can act on.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut fields = ConfigFields::parse("triage", json)?;
        let config = Config {
            mode: fields.get_or_else("mode", Mode::default)?,
            categories: fields.get_or_else("categories", default_categories)?,
            default_category: fields.get_or_else("default_category", default_category)?,
            urgency: fields.get_or_else("urgency", default_urgency)?,
            default_urgency: fields.get_or_else("default_urgency", default_urgency_name)?,
            replies: fields.get_or_else("replies", default_replies)?,
            instructions: fields.get_or("instructions", None)?,
            model: fields.get_or("model", None)?,
        };
        fields.finish()?;
        if !config.replies.contains_key("default") {
            return Err("triage config: `replies` needs a `default` template".into());
        }
        for (name, template) in &config.replies {
            VARIABLES.check(template).map_err(|e| format!("triage config: reply `{name}`: {e}"))?;
        }
        Ok(config)
    }
}

/// A ticket as read from the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticket {
    /// Subject line (the first line of a plain-text ticket).
    pub subject: String,
    /// The body.
    pub body: String,
    /// Who wrote it (usually masked by then).
    pub from: String,
}

impl Ticket {
    /// Reads a ticket from JSON (`subject`, `body`/`text`/`description`,
    /// `from`/`customer`) or plain text.
    pub fn read(text: &str) -> Self {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
            let field = |names: &[&str]| {
                names.iter().find_map(|n| map.get(*n).and_then(Value::as_str)).unwrap_or_default().to_string()
            };
            return Ticket {
                subject: field(&["subject", "title"]),
                body: field(&["body", "text", "description", "message"]),
                from: field(&["from", "customer", "email", "name"]),
            };
        }
        let text = text.trim();
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let subject = first.trim().strip_prefix("Subject:").map(str::trim).unwrap_or(first.trim());
        Ticket { subject: subject.to_string(), body: rest.trim().to_string(), from: String::new() }
    }
}

/// The triage result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triage {
    /// The category.
    pub category: String,
    /// The urgency level.
    pub urgency: String,
    /// Why: each matched keyword with its weight, per decision.
    pub explanation: String,
    /// The drafted reply.
    pub draft: String,
}

/// Counts whole-word (or whole-phrase) occurrences of `keyword` in `text` (both lower-case).
fn occurrences(text: &str, keyword: &str) -> u32 {
    if keyword.is_empty() {
        return 0;
    }
    let mut count = 0;
    let mut from = 0;
    while let Some(pos) = text[from..].find(keyword) {
        let start = from + pos;
        let end = start + keyword.len();
        let before = text[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = text[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before && after {
            count += 1;
        }
        from = end;
    }
    count
}

/// Classifies with the keyword rules and drafts the reply.
pub fn classify(ticket: &Ticket, config: &Config) -> Triage {
    let text = format!("{}\n{}", ticket.subject, ticket.body).to_lowercase();
    let mut best: Option<(u32, &str, Vec<String>)> = None;
    for (category, keywords) in &config.categories {
        let mut score = 0;
        let mut hits = Vec::new();
        for (keyword, weight) in keywords {
            let n = occurrences(&text, &keyword.to_lowercase());
            if n > 0 {
                score += n * weight;
                hits.push(format!("{keyword}×{n}(+{})", n * weight));
            }
        }
        if score > 0 && best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, category, hits));
        }
    }
    let (category, category_why) = match best {
        Some((score, category, hits)) => {
            (category.to_string(), format!("category {category} scored {score}: {}", hits.join(", ")))
        }
        None => (config.default_category.clone(), format!("category {}: no keyword matched", config.default_category)),
    };
    let mut urgency =
        (config.default_urgency.clone(), format!("urgency {}: no level reached its threshold", config.default_urgency));
    for level in &config.urgency {
        let mut score = 0;
        let mut hits = Vec::new();
        for (keyword, weight) in &level.keywords {
            let n = occurrences(&text, &keyword.to_lowercase());
            if n > 0 {
                score += n * weight;
                hits.push(format!("{keyword}×{n}(+{})", n * weight));
            }
        }
        if score >= level.threshold && score > 0 {
            urgency = (
                level.name.clone(),
                format!("urgency {} scored {score} ≥ {}: {}", level.name, level.threshold, hits.join(", ")),
            );
            break;
        }
    }
    let draft = draft_reply(ticket, &category, &urgency.0, config);
    Triage { category, urgency: urgency.0, explanation: format!("{category_why}; {}", urgency.1), draft }
}

/// Fills the reply template of `category` (or `default`).
pub fn draft_reply(ticket: &Ticket, category: &str, urgency: &str, config: &Config) -> String {
    let template = config.replies.get(category).or_else(|| config.replies.get("default")).cloned().unwrap_or_default();
    let subject = if ticket.subject.is_empty() { "your request" } else { ticket.subject.as_str() };
    template::render(&template, |name| match name {
        "subject" => Some(subject.to_string()),
        "category" => Some(category.to_string()),
        "urgency" => Some(urgency.to_string()),
        _ => None,
    })
}

/// What a reply template may use, written without spaces (`{{subject}}`).
const VARIABLES: Variables = Variables::new(&["subject", "category", "urgency"]);

/// The messages asking a model to triage `ticket`.
pub fn llm_prompt(ticket: &Ticket, config: &Config) -> (String, String) {
    let categories: Vec<&str> =
        config.categories.keys().map(String::as_str).chain([config.default_category.as_str()]).collect();
    let urgencies: Vec<&str> =
        config.urgency.iter().map(|l| l.name.as_str()).chain([config.default_urgency.as_str()]).collect();
    let mut system = format!(
        "You triage customer support tickets. Answer with one JSON object and nothing else: \
         {{\"category\": one of {categories:?}, \"urgency\": one of {urgencies:?}, \
         \"reason\": a short explanation, \"reply\": a polite draft reply to the customer}}. \
         Personal data in the ticket is masked as [TYPE] tags; never invent it."
    );
    if let Some(extra) = &config.instructions {
        system.push(' ');
        system.push_str(extra);
    }
    let user = format!("Subject: {}\n\n{}", ticket.subject, ticket.body);
    (system, user)
}

/// Reads the model's JSON answer; values outside the configured sets are refused.
///
/// # Errors
///
/// A message quoting what was wrong with the answer.
pub fn parse_llm_answer(answer: &str, config: &Config) -> Result<Triage, String> {
    let trimmed = answer.trim().trim_start_matches("```json").trim_start_matches("```").trim_end_matches("```").trim();
    let start =
        trimmed.find('{').ok_or_else(|| format!("the model's answer has no JSON object: {}", preview(answer)))?;
    let end =
        trimmed.rfind('}').ok_or_else(|| format!("the model's answer has no JSON object: {}", preview(answer)))?;
    let value: Value = serde_json::from_str(&trimmed[start..=end])
        .map_err(|e| format!("the model's answer is not valid JSON ({e}): {}", preview(answer)))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::trim).unwrap_or_default().to_string();
    let category = field("category");
    let urgency = field("urgency");
    let known_category = config.categories.contains_key(&category) || category == config.default_category;
    let known_urgency = config.urgency.iter().any(|l| l.name == urgency) || urgency == config.default_urgency;
    if !known_category || !known_urgency {
        return Err(format!(
            "the model answered category `{category}` / urgency `{urgency}`, outside the configured sets"
        ));
    }
    let draft = field("reply");
    if draft.is_empty() {
        return Err("the model's answer has no `reply`".into());
    }
    Ok(Triage { category, urgency, explanation: format!("llm: {}", field("reason")), draft })
}

fn preview(text: &str) -> String {
    text.chars().take(160).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_json("{}").unwrap()
    }

    #[test]
    fn reads_json_and_text_tickets() {
        let t = Ticket::read(r#"{"subject":"Refund","body":"I was charged twice","from":"[EMAIL]"}"#);
        assert_eq!(
            (t.subject.as_str(), t.body.as_str(), t.from.as_str()),
            ("Refund", "I was charged twice", "[EMAIL]")
        );
        let t = Ticket::read("Subject: Login broken\nI cannot log in since today.");
        assert_eq!(t.subject, "Login broken");
        assert_eq!(t.body, "I cannot log in since today.");
    }

    #[test]
    fn rules_pick_category_and_urgency_and_explain() {
        let t = Ticket::read(r#"{"subject":"Site down","body":"Production outage for all users, urgent!"}"#);
        let result = classify(&t, &config());
        assert_eq!(result.category, "outage");
        assert_eq!(result.urgency, "critical");
        assert!(result.explanation.contains("outage×1(+4)"), "{}", result.explanation);
        assert!(result.draft.contains("\"Site down\""));

        let t = Ticket::read(r#"{"subject":"Question","body":"How do I change my avatar?"}"#);
        let result = classify(&t, &config());
        assert_eq!((result.category.as_str(), result.urgency.as_str()), ("general", "normal"));

        let t = Ticket::read(r#"{"subject":"Invoice","body":"Please refund the double charge on my invoice asap"}"#);
        let result = classify(&t, &config());
        assert_eq!((result.category.as_str(), result.urgency.as_str()), ("billing", "high"));
    }

    #[test]
    fn keywords_match_whole_words_only() {
        assert_eq!(occurrences("the system is down", "down"), 1);
        assert_eq!(occurrences("download failed", "down"), 0);
        assert_eq!(occurrences("log in, then log in again", "log in"), 2);
    }

    #[test]
    fn weights_come_from_the_workflow() {
        let cfg = Config::from_json(
            r#"{"categories":{"shipping":{"parcel":5}},"urgency":[],"replies":{"default":"{{category}}"}}"#,
        )
        .unwrap();
        let result = classify(&Ticket::read("Where is my parcel?"), &cfg);
        assert_eq!(
            (result.category.as_str(), result.urgency.as_str(), result.draft.as_str()),
            ("shipping", "normal", "shipping")
        );
        assert!(
            Config::from_json(r#"{"replies":{"default":"{{name}}"}}"#)
                .unwrap_err()
                .contains("unknown template variable")
        );
        assert!(Config::from_json(r#"{"replies":{"x":"y"}}"#).unwrap_err().contains("needs a `default`"));
        assert!(Config::from_json(r#"{"mode":"magic"}"#).unwrap_err().contains("unknown variant"));
    }

    #[test]
    fn llm_answers_are_checked() {
        let cfg = config();
        let ok = parse_llm_answer("```json\n{\"category\":\"billing\",\"urgency\":\"high\",\"reason\":\"double charge\",\"reply\":\"Hi\"}\n```", &cfg).unwrap();
        assert_eq!((ok.category.as_str(), ok.urgency.as_str(), ok.draft.as_str()), ("billing", "high", "Hi"));
        assert!(
            parse_llm_answer("{\"category\":\"spam\",\"urgency\":\"high\",\"reply\":\"x\"}", &cfg)
                .unwrap_err()
                .contains("outside")
        );
        assert!(parse_llm_answer("I think billing", &cfg).unwrap_err().contains("no JSON object"));
    }
}
