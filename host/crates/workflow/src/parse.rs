//! Phase 1: YAML text -> [`Workflow`], collecting every problem found in the file.

use std::sync::Arc;
use std::time::Duration;

use saphyr::{AnnotatedMapping, LoadableYamlNode, MarkedYaml, Marker, ScanError, YamlData};

use super::contract::{check_media_type, check_schema_reachable, schema_problem};
use super::suggest::did_you_mean;
use super::units::{format_duration, parse_count, parse_duration, parse_size};
use super::validate::{GraphNode, graph_problems};
use super::{
    DEFAULT_JOB_DEADLINE, Defaults, DefaultsSpans, Diagnostic, GrantSpec, Grants, InputContract, Jitter, LimitSpans,
    MAX_STEP_ID_LEN, MapSpec, RetryPolicy, Span, StepLimits, StepSpans, StepSpec, Workflow, WorkflowError,
};

// The field lists below are also what `workflow_file_schema` lists (a test
// in `file_schema.rs` checks that the two agree).

/// Fields allowed at the top level of a workflow file.
pub(crate) const TOP_FIELDS: &[&str] = &["name", "version", "description", "deadline", "input", "defaults", "steps"];
/// Fields allowed in `input`.
pub(crate) const INPUT_FIELDS: &[&str] = &["media_types", "max_size", "json_schema"];
/// Fields allowed in `defaults`.
pub(crate) const DEFAULTS_FIELDS: &[&str] = &["timeout", "retry", "limits"];
/// Fields allowed in a step.
pub(crate) const STEP_FIELDS: &[&str] =
    &["id", "plugin", "needs", "config", "map", "retry", "timeout", "limits", "grants"];
/// Fields allowed in `retry`.
pub(crate) const RETRY_FIELDS: &[&str] =
    &["max_attempts", "initial_backoff", "max_backoff", "multiplier", "jitter", "max_retry_after"];
/// Fields allowed in `limits`.
pub(crate) const LIMITS_FIELDS: &[&str] = &["memory", "fuel", "output"];
/// Fields allowed in a `map` mapping.
pub(crate) const MAP_FIELDS: &[&str] = &["concurrency"];
/// How deep `config` values may nest.
const MAX_CONFIG_DEPTH: usize = 64;

type Node<'n> = MarkedYaml<'n>;
type Mapping<'n> = AnnotatedMapping<'n, MarkedYaml<'n>>;

/// A YAML node with tags stripped, by kind.
enum View<'a, 'n> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Seq(&'a [Node<'n>]),
    Map(&'a Mapping<'n>),
    Bad,
}

fn view<'a, 'n>(node: &'a Node<'n>) -> View<'a, 'n> {
    let mut data = &node.data;
    // Tags (`!!str`, custom tags) are ignored: the value underneath is what counts.
    while let YamlData::Tagged(_, inner) = data {
        data = &inner.data;
    }
    match data {
        YamlData::Value(scalar) => match scalar {
            saphyr::Scalar::Null => View::Null,
            saphyr::Scalar::Boolean(b) => View::Bool(*b),
            saphyr::Scalar::Integer(i) => View::Int(*i),
            saphyr::Scalar::FloatingPoint(f) => View::Float(f.0),
            saphyr::Scalar::String(s) => View::Str(s),
        },
        YamlData::Representation(s, _, _) => View::Str(s),
        YamlData::Sequence(seq) => View::Seq(seq),
        YamlData::Mapping(map) => View::Map(map),
        YamlData::Tagged(..) | YamlData::Alias(_) | YamlData::BadValue => View::Bad,
    }
}

/// How a node's kind is named in "found ..." messages.
fn kind(node: &Node<'_>) -> &'static str {
    match view(node) {
        View::Null => "an empty value",
        View::Bool(_) => "a boolean",
        View::Int(_) => "an integer",
        View::Float(_) => "a number",
        View::Str(_) => "a string",
        View::Seq(_) => "a list",
        View::Map(_) => "a mapping",
        View::Bad => "an invalid value",
    }
}

fn marker_span(marker: &Marker) -> Span {
    Span::new(marker.line().max(1), marker.col().saturating_add(1))
}

fn span_of(node: &Node<'_>) -> Span {
    marker_span(&node.span.start)
}

/// Where a group of fields lives, for messages: `top`, `defaults` or a step.
#[derive(Clone)]
struct Place {
    /// Prefix for field paths (`defaults.` in the defaults section).
    prefix: &'static str,
    /// The step the fields belong to (`step `load``), if any.
    owner: Option<String>,
}

impl Place {
    fn top() -> Self {
        Self { prefix: "", owner: None }
    }

    fn defaults() -> Self {
        Self { prefix: "defaults.", owner: None }
    }

    fn input() -> Self {
        Self { prefix: "input.", owner: None }
    }

    fn step(label: String) -> Self {
        Self { prefix: "", owner: Some(label) }
    }

    /// "`timeout` in step `load`", "`defaults.timeout`".
    fn field(&self, path: &str) -> String {
        match &self.owner {
            Some(owner) => format!("`{}{path}` in {owner}", self.prefix),
            None => format!("`{}{path}`", self.prefix),
        }
    }

    /// Where an unknown field inside `path` is: "in `retry` of step `load`", "in `defaults.retry`".
    fn inside(&self, path: &str) -> String {
        match &self.owner {
            Some(owner) => format!("in `{}{path}` of {owner}", self.prefix),
            None => format!("in `{}{path}`", self.prefix),
        }
    }

    /// Where an unknown field of this place itself is.
    fn itself(&self) -> String {
        match &self.owner {
            Some(owner) => format!("in {owner}"),
            None if self.prefix.is_empty() => "at the top level".to_owned(),
            None => format!("in `{}`", self.prefix.trim_end_matches('.')),
        }
    }
}

/// A key/value pair of a mapping whose key is an allowed field name.
struct Field<'a, 'n> {
    name: String,
    value: &'a Node<'n>,
}

impl Field<'_, '_> {
    fn span(&self) -> Span {
        span_of(self.value)
    }
}

fn get<'f, 'a, 'n>(fields: &'f [Field<'a, 'n>], name: &str) -> Option<&'f Field<'a, 'n>> {
    fields.iter().find(|f| f.name == name && !matches!(view(f.value), View::Null))
}

/// Retry fields as written in one place, before merging.
#[derive(Clone, Copy, Default)]
struct PartialRetry {
    span: Option<Span>,
    max_attempts: Option<u32>,
    initial_backoff: Option<(Duration, Span)>,
    max_backoff: Option<(Duration, Span)>,
    multiplier: Option<f64>,
    jitter: Option<Jitter>,
    max_retry_after: Option<Duration>,
}

impl PartialRetry {
    fn over(&self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff: self.initial_backoff.map_or(base.initial_backoff, |(d, _)| d),
            max_backoff: self.max_backoff.map_or(base.max_backoff, |(d, _)| d),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            jitter: self.jitter.unwrap_or(base.jitter),
            max_retry_after: self.max_retry_after.unwrap_or(base.max_retry_after),
        }
    }
}

/// Limits as written in one place, with spans, before merging.
#[derive(Clone, Copy, Default)]
struct PartialLimits {
    memory: Option<(u64, Span)>,
    fuel: Option<(u64, Span)>,
    output: Option<(u64, Span)>,
}

impl PartialLimits {
    fn over(&self, base: &Self) -> Self {
        Self { memory: self.memory.or(base.memory), fuel: self.fuel.or(base.fuel), output: self.output.or(base.output) }
    }

    fn values(&self) -> StepLimits {
        StepLimits {
            memory: self.memory.map(|(v, _)| v),
            fuel: self.fuel.map(|(v, _)| v),
            output: self.output.map(|(v, _)| v),
        }
    }

    fn spans(&self) -> LimitSpans {
        LimitSpans {
            memory: self.memory.map(|(_, s)| s),
            fuel: self.fuel.map(|(_, s)| s),
            output: self.output.map(|(_, s)| s),
        }
    }
}

/// The `defaults` section as written.
#[derive(Default)]
struct DefaultsDraft {
    span: Option<Span>,
    timeout: Option<(Duration, Span)>,
    retry: PartialRetry,
    limits: PartialLimits,
}

/// A step as written, with whatever could be understood of it.
struct StepDraft {
    span: Span,
    label: String,
    /// The id, if it is a string (even if it has the wrong shape, to avoid cascading errors).
    id: Option<(String, Span)>,
    plugin: Option<(String, Span)>,
    needs: Vec<(String, Span)>,
    config: serde_json::Value,
    config_span: Option<Span>,
    map: Option<MapSpec>,
    map_span: Option<Span>,
    retry: PartialRetry,
    timeout: Option<(Duration, Span)>,
    limits: PartialLimits,
    grants: Grants,
    grants_span: Option<Span>,
}

/// Parsing state: the text (for raw scalar text) and the problems found so far.
struct Cx<'t> {
    source: &'t str,
    chars: Vec<char>,
    diagnostics: Vec<Diagnostic>,
}

impl<'t> Cx<'t> {
    fn new(source: &'t str, text: &str) -> Self {
        Self { source, chars: text.chars().collect(), diagnostics: Vec::new() }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(self.source, span, message));
    }

    /// The text of a node as written in the file.
    fn raw(&self, node: &Node<'_>) -> String {
        let start = node.span.start.index();
        let end = node.span.end.index().max(start);
        self.chars.get(start..end).map(|chars| chars.iter().collect::<String>().trim().to_owned()).unwrap_or_default()
    }

    /// A scalar as text: strings as they are, numbers as written; `None` for anything else.
    fn text(&self, node: &Node<'_>) -> Option<String> {
        match view(node) {
            View::Str(s) => Some(s.to_owned()),
            View::Int(_) | View::Float(_) => Some(self.raw(node)),
            _ => None,
        }
    }

    fn type_error(&mut self, node: &Node<'_>, expected: &str, what: &str) {
        let found = kind(node);
        self.error(span_of(node), format!("expected {expected} for {what}, found {found}"));
    }

    /// A scalar that must be text (numbers are taken as written).
    fn text_field(&mut self, node: &Node<'_>, what: &str) -> Option<String> {
        let text = self.text(node);
        if text.is_none() {
            self.type_error(node, "a string", what);
        }
        text
    }

    /// The entries of a mapping, reporting keys that are not in `allowed`.
    fn fields<'a, 'n>(&mut self, map: &'a Mapping<'n>, allowed: &[&str], place: &str) -> Vec<Field<'a, 'n>> {
        let mut fields = Vec::new();
        for (key, value) in map {
            let name = match view(key) {
                View::Str(s) => s.to_owned(),
                View::Seq(_) | View::Map(_) => {
                    // A complex key (`? [a, b]`): no field is named so, and
                    // building its text would expand any aliases inside it.
                    self.error(
                        span_of(key),
                        format!(
                            "a field name must be plain text, found {} used as a key {place}; \
                             allowed fields are {}",
                            kind(key),
                            allowed.join(", ")
                        ),
                    );
                    continue;
                }
                _ => self.raw(key),
            };
            if allowed.contains(&name.as_str()) {
                fields.push(Field { name, value });
                continue;
            }
            let suggestion = did_you_mean(&name, allowed.iter().copied());
            let separator = if suggestion.is_empty() { ";" } else { "" };
            self.error(
                span_of(key),
                format!(
                    "unknown field `{name}` {place}{suggestion}{separator} allowed fields are {}",
                    allowed.join(", ")
                ),
            );
        }
        fields
    }

    fn require<'f, 'a, 'n>(
        &mut self,
        fields: &'f [Field<'a, 'n>],
        name: &str,
        at: Span,
        place: &str,
    ) -> Option<&'f Field<'a, 'n>> {
        let field = fields.iter().find(|f| f.name == name);
        if field.is_none() {
            self.error(at, format!("missing required field `{name}` {place}"));
        }
        field
    }

    fn duration(&mut self, node: &Node<'_>, what: &str) -> Option<Duration> {
        let Some(text) = self.text(node) else {
            self.type_error(node, "a duration such as `30s`", what);
            return None;
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(detail) => {
                self.error(span_of(node), format!("invalid duration for {what}: {detail}"));
                None
            }
        }
    }

    fn size(&mut self, node: &Node<'_>, what: &str) -> Option<u64> {
        let Some(text) = self.text(node) else {
            self.type_error(node, "a size such as `64MiB`", what);
            return None;
        };
        match parse_size(&text) {
            Ok(0) => {
                self.error(span_of(node), format!("{what} must be greater than zero"));
                None
            }
            Ok(bytes) => Some(bytes),
            Err(detail) => {
                self.error(span_of(node), format!("invalid size for {what}: {detail}"));
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    fn count(&mut self, node: &Node<'_>, what: &str, max: u64) -> Option<u64> {
        let raw = self.raw(node);
        let value = match view(node) {
            View::Int(i) if i < 0 => {
                self.error(span_of(node), format!("{what} cannot be negative, found {raw}"));
                return None;
            }
            View::Int(i) => u64::try_from(i).ok(),
            View::Str(s) => {
                let Some(v) = parse_count(s) else {
                    self.type_error(node, "a whole number", what);
                    return None;
                };
                Some(v)
            }
            View::Float(f) => {
                // `5e9` is a float in YAML; suggest writing the digits out.
                let hint = if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1e19 {
                    format!("; write it out as `{f:.0}`")
                } else {
                    String::new()
                };
                self.error(span_of(node), format!("expected a whole number for {what}, found `{raw}`{hint}"));
                return None;
            }
            _ => {
                self.type_error(node, "a whole number", what);
                return None;
            }
        };
        match value {
            Some(v) if v <= max => Some(v),
            _ => {
                self.error(span_of(node), format!("{what} is too large, found {raw}; the maximum is {max}"));
                None
            }
        }
    }

    fn retry(&mut self, node: &Node<'_>, place: &Place) -> PartialRetry {
        let mut retry = PartialRetry { span: Some(span_of(node)), ..PartialRetry::default() };
        let View::Map(map) = view(node) else {
            self.type_error(node, "a mapping", &place.field("retry"));
            return retry;
        };
        let fields = self.fields(map, RETRY_FIELDS, &place.inside("retry"));
        if let Some(f) = get(&fields, "max_attempts") {
            let what = place.field("retry.max_attempts");
            if let Some(n) = self.count(f.value, &what, u64::from(u32::MAX)) {
                if n == 0 {
                    self.error(f.span(), format!("{what} must be at least 1 (it counts the first attempt), found 0"));
                } else {
                    retry.max_attempts = u32::try_from(n).ok();
                }
            }
        }
        for (name, slot) in [("initial_backoff", &mut retry.initial_backoff), ("max_backoff", &mut retry.max_backoff)] {
            if let Some(f) = get(&fields, name) {
                let what = place.field(&format!("retry.{name}"));
                *slot = self.duration(f.value, &what).map(|d| (d, f.span()));
            }
        }
        if let Some(f) = get(&fields, "max_retry_after") {
            retry.max_retry_after = self.duration(f.value, &place.field("retry.max_retry_after"));
        }
        if let Some(f) = get(&fields, "multiplier") {
            let what = place.field("retry.multiplier");
            let value = match view(f.value) {
                View::Int(i) => Some(i as f64),
                View::Float(x) => Some(x),
                _ => {
                    self.type_error(f.value, "a number", &what);
                    None
                }
            };
            if let Some(m) = value {
                if m.is_finite() && m >= 1.0 {
                    retry.multiplier = Some(m);
                } else {
                    let raw = self.raw(f.value);
                    self.error(f.span(), format!("{what} must be at least 1.0, found {raw}"));
                }
            }
        }
        if let Some(f) = get(&fields, "jitter") {
            let what = place.field("retry.jitter");
            match view(f.value) {
                View::Str("full") => retry.jitter = Some(Jitter::Full),
                View::Str("none") => retry.jitter = Some(Jitter::None),
                View::Str(other) => {
                    let hint = did_you_mean(other, ["full", "none"]);
                    let hint = if hint.is_empty() { "; expected `full` or `none`".to_owned() } else { hint };
                    self.error(f.span(), format!("unknown jitter `{other}` for {what}{hint}"));
                }
                _ => self.type_error(f.value, "`full` or `none`", &what),
            }
        }
        retry
    }

    fn limits(&mut self, node: &Node<'_>, place: &Place) -> PartialLimits {
        let mut limits = PartialLimits::default();
        let View::Map(map) = view(node) else {
            self.type_error(node, "a mapping", &place.field("limits"));
            return limits;
        };
        let fields = self.fields(map, LIMITS_FIELDS, &place.inside("limits"));
        if let Some(f) = get(&fields, "memory") {
            let what = place.field("limits.memory");
            limits.memory = self.size(f.value, &what).map(|v| (v, f.span()));
        }
        if let Some(f) = get(&fields, "fuel") {
            let what = place.field("limits.fuel");
            match self.count(f.value, &what, u64::MAX) {
                Some(0) => self.error(f.span(), format!("{what} must be greater than zero")),
                Some(v) => limits.fuel = Some((v, f.span())),
                None => {}
            }
        }
        if let Some(f) = get(&fields, "output") {
            let what = place.field("limits.output");
            limits.output = self.size(f.value, &what).map(|v| (v, f.span()));
        }
        limits
    }

    fn timeout(&mut self, node: &Node<'_>, place: &Place) -> Option<(Duration, Span)> {
        let what = place.field("timeout");
        match self.duration(node, &what) {
            Some(Duration::ZERO) => {
                self.error(span_of(node), format!("{what} must be greater than zero"));
                None
            }
            Some(d) => Some((d, span_of(node))),
            None => None,
        }
    }

    /// The `input:` section: what a job's input must be. `None` (after
    /// reporting) when any part of it is wrong, so no half contract runs.
    fn input(&mut self, node: &Node<'_>, workflow: &str) -> Option<InputContract> {
        let View::Map(map) = view(node) else {
            self.type_error(node, "a mapping such as `{ media_types: [application/pdf], max_size: 20MiB }`", "`input`");
            return None;
        };
        let place = Place::input();
        let fields = self.fields(map, INPUT_FIELDS, &place.itself());
        let mut ok = true;
        let mut media_types: Vec<String> = Vec::new();
        let mut media_span = None;
        if let Some(f) = get(&fields, "media_types") {
            media_span = Some(f.span());
            let what = place.field("media_types");
            match view(f.value) {
                View::Seq([]) => {
                    self.error(
                        f.span(),
                        format!("{what} is an empty list, which accepts nothing; list media types or remove it"),
                    );
                    ok = false;
                }
                View::Seq(items) => {
                    for item in items {
                        let Some(text) = self.text(item) else {
                            self.type_error(
                                item,
                                "a media type such as `application/pdf`",
                                &format!("an entry of {what}"),
                            );
                            ok = false;
                            continue;
                        };
                        let media_type = text.trim().to_ascii_lowercase();
                        if let Err(error) = check_media_type(&media_type) {
                            self.error(span_of(item), format!("{error} (in {what})"));
                            ok = false;
                        } else if media_types.contains(&media_type) {
                            self.error(span_of(item), format!("{what} lists `{media_type}` more than once"));
                        } else {
                            media_types.push(media_type);
                        }
                    }
                }
                _ => {
                    let hint = self.text(f.value).map(|t| format!("; write `media_types: [{t}]`")).unwrap_or_default();
                    let found = kind(f.value);
                    self.error(f.span(), format!("expected a list of media types for {what}, found {found}{hint}"));
                    ok = false;
                }
            }
        }
        let mut max_size = None;
        if let Some(f) = get(&fields, "max_size") {
            max_size = self.size(f.value, &place.field("max_size"));
            ok &= max_size.is_some();
        }
        let mut schema = None;
        if let Some(f) = get(&fields, "json_schema") {
            let what = place.field("json_schema");
            let value = match view(f.value) {
                View::Map(_) | View::Bool(_) => self.json(f.value, "json_schema", &place, 0),
                _ => {
                    self.type_error(f.value, "a mapping (a JSON Schema)", &what);
                    None
                }
            };
            match value.map(|value| (schema_problem(&value), value)) {
                Some((None, value)) => schema = Some(value),
                Some((Some(problem), _)) => {
                    self.error(f.span(), problem);
                    ok = false;
                }
                None => ok = false,
            }
            if let Err(error) = check_schema_reachable(&media_types, schema.is_some()) {
                self.error(media_span.unwrap_or(f.span()), error.to_string());
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        match InputContract::new(workflow, media_types, max_size, schema) {
            Ok(contract) => Some(contract),
            Err(error) => {
                self.error(span_of(node), error.to_string());
                None
            }
        }
    }

    fn defaults(&mut self, node: &Node<'_>) -> DefaultsDraft {
        let mut draft = DefaultsDraft { span: Some(span_of(node)), ..DefaultsDraft::default() };
        let View::Map(map) = view(node) else {
            self.type_error(node, "a mapping", "`defaults`");
            return draft;
        };
        let place = Place::defaults();
        let fields = self.fields(map, DEFAULTS_FIELDS, &place.itself());
        if let Some(f) = get(&fields, "timeout") {
            draft.timeout = self.timeout(f.value, &place);
        }
        if let Some(f) = get(&fields, "retry") {
            draft.retry = self.retry(f.value, &place);
            let merged = draft.retry.over(RetryPolicy::default());
            self.check_backoff_order(&draft.retry, merged, &place);
        }
        if let Some(f) = get(&fields, "limits") {
            draft.limits = self.limits(f.value, &place);
        }
        draft
    }

    /// Reports `initial_backoff > max_backoff` in the effective policy, at whichever of the two
    /// was written in `written` (nothing if neither was: it was checked where it was written).
    fn check_backoff_order(&mut self, written: &PartialRetry, merged: RetryPolicy, place: &Place) {
        if merged.initial_backoff <= merged.max_backoff {
            return;
        }
        let Some(span) = written.initial_backoff.or(written.max_backoff).map(|(_, span)| span) else {
            return;
        };
        let describe = |value: Duration, here: bool| {
            let value = format_duration(value);
            if here { format!("({value})") } else { format!("({value}, inherited)") }
        };
        let owner = place.owner.as_ref().map(|o| format!(" in {o}")).unwrap_or_default();
        let prefix = place.prefix;
        self.error(
            span,
            format!(
                "`{prefix}retry.initial_backoff` {} is greater than `{prefix}retry.max_backoff` {}{owner}; lower initial_backoff or raise max_backoff",
                describe(merged.initial_backoff, written.initial_backoff.is_some()),
                describe(merged.max_backoff, written.max_backoff.is_some()),
            ),
        );
    }

    fn needs(&mut self, node: &Node<'_>, place: &Place) -> Vec<(String, Span)> {
        let what = place.field("needs");
        let items = match view(node) {
            View::Seq(items) => items,
            _ => {
                let hint = self.text(node).map(|t| format!("; write `needs: [{t}]`")).unwrap_or_default();
                let found = kind(node);
                self.error(span_of(node), format!("expected a list of step ids for {what}, found {found}{hint}"));
                return Vec::new();
            }
        };
        let mut needs: Vec<(String, Span)> = Vec::new();
        for item in items {
            let Some(id) = self.text(item) else {
                self.type_error(item, "a step id", &format!("an entry of {what}"));
                continue;
            };
            if needs.iter().any(|(seen, _)| *seen == id) {
                self.error(span_of(item), format!("{what} lists `{id}` more than once"));
                continue;
            }
            needs.push((id, span_of(item)));
        }
        needs
    }

    fn map_spec(&mut self, node: &Node<'_>, place: &Place) -> Option<MapSpec> {
        match view(node) {
            View::Bool(true) => Some(MapSpec::default()),
            View::Bool(false) | View::Null => None,
            View::Map(map) => {
                let fields = self.fields(map, MAP_FIELDS, &place.inside("map"));
                let mut spec = MapSpec::default();
                if let Some(f) = get(&fields, "concurrency") {
                    let what = place.field("map.concurrency");
                    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
                    match self.count(f.value, &what, max) {
                        Some(0) => {
                            self.error(f.span(), format!("{what} must be at least 1, found 0"));
                        }
                        Some(n) => spec.concurrency = usize::try_from(n).unwrap_or(usize::MAX),
                        None => {}
                    }
                }
                Some(spec)
            }
            _ => {
                self.type_error(node, "`true` or a mapping such as `{ concurrency: 4 }`", &place.field("map"));
                None
            }
        }
    }

    fn grants(&mut self, node: &Node<'_>, place: &Place) -> Grants {
        let mut grants = Grants::new();
        let View::Map(map) = view(node) else {
            self.type_error(node, "a mapping of capability names to `true` or a list", &place.field("grants"));
            return grants;
        };
        let owner = place.owner.clone().unwrap_or_default();
        for (key, value) in map {
            let Some(name) = self.text(key).filter(|n| !n.trim().is_empty()) else {
                self.type_error(key, "a capability name", &place.field("grants"));
                continue;
            };
            let what = format!("grant `{name}` in {owner}");
            let spec = match view(value) {
                View::Bool(true) => Some(GrantSpec::All),
                View::Bool(false) => {
                    self.error(span_of(value), format!("{what} is `false`; remove it to withhold the capability"));
                    None
                }
                View::Seq(items) => {
                    let mut list = Vec::new();
                    for item in items {
                        match self.text(item) {
                            Some(text) => list.push(text),
                            None => self.type_error(item, "a string", &format!("an entry of {what}")),
                        }
                    }
                    if items.is_empty() {
                        self.error(
                            span_of(value),
                            format!("{what} is an empty list, which allows nothing; list what it allows or use `true`"),
                        );
                    }
                    (!list.is_empty()).then_some(GrantSpec::List(list))
                }
                _ => {
                    self.type_error(value, "`true` or a list of strings", &what);
                    None
                }
            };
            if let Some(spec) = spec {
                grants.insert(name, spec, span_of(key));
            }
        }
        grants
    }

    /// Converts a YAML value to JSON, reporting what JSON cannot represent.
    /// `path` is the value's path (`config.a[0]`), `place` says whose config it is.
    fn json(&mut self, node: &Node<'_>, path: &str, place: &Place, depth: usize) -> Option<serde_json::Value> {
        let what = place.field(path);
        use serde_json::Value;
        if depth > MAX_CONFIG_DEPTH {
            self.error(span_of(node), format!("{what} is nested more than {MAX_CONFIG_DEPTH} levels deep"));
            return None;
        }
        match view(node) {
            View::Null => Some(Value::Null),
            View::Bool(b) => Some(Value::Bool(b)),
            View::Int(i) => Some(Value::from(i)),
            View::Float(f) => {
                let number = serde_json::Number::from_f64(f);
                if number.is_none() {
                    let raw = self.raw(node);
                    self.error(
                        span_of(node),
                        format!("{what} is `{raw}`, which json cannot represent; use a finite number or a string"),
                    );
                }
                number.map(Value::Number)
            }
            View::Str(s) => Some(Value::String(s.to_owned())),
            View::Seq(items) => {
                let mut array = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.json(item, &format!("{path}[{i}]"), place, depth + 1) {
                        Some(v) => array.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Array(array))
            }
            View::Map(map) => {
                let mut object = serde_json::Map::new();
                let mut ok = true;
                for (key, value) in map {
                    let Some(name) = self.text(key) else {
                        let found = kind(key);
                        self.error(
                            span_of(key),
                            format!("keys in {what} must be strings, found {found}; quote the key"),
                        );
                        ok = false;
                        continue;
                    };
                    match self.json(value, &format!("{path}.{name}"), place, depth + 1) {
                        Some(v) => {
                            object.insert(name, v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Object(object))
            }
            View::Bad => {
                let raw = self.raw(node);
                self.error(span_of(node), format!("invalid value `{raw}` in {what}"));
                None
            }
        }
    }

    fn step(&mut self, node: &Node<'_>, index: usize) -> Option<StepDraft> {
        let View::Map(map) = view(node) else {
            self.type_error(node, "a mapping", &format!("step #{}", index + 1));
            return None;
        };
        let span = span_of(node);
        // The id first, so that every other message can name the step.
        let id_field = map.iter().find(|(k, _)| matches!(view(k), View::Str("id"))).map(|(_, v)| v);
        let id_text = id_field.and_then(|v| self.text(v));
        let label = match &id_text {
            Some(id) if !id.is_empty() => format!("step `{id}`"),
            _ => format!("step #{}", index + 1),
        };
        let place = Place::step(label.clone());
        let fields = self.fields(map, STEP_FIELDS, &place.itself());
        let mut draft = StepDraft {
            span,
            label: label.clone(),
            id: None,
            plugin: None,
            needs: Vec::new(),
            config: serde_json::Value::Object(serde_json::Map::new()),
            config_span: None,
            map: None,
            map_span: None,
            retry: PartialRetry::default(),
            timeout: None,
            limits: PartialLimits::default(),
            grants: Grants::new(),
            grants_span: None,
        };
        let itself = place.itself();
        if let Some(f) = self.require(&fields, "id", span, &itself)
            && let Some(id) = self.text_field(f.value, &place.field("id"))
        {
            self.check_id(&id, f.span());
            draft.id = Some((id, f.span()));
        }
        if let Some(f) = self.require(&fields, "plugin", span, &itself)
            && let Some(plugin) = self.text_field(f.value, &place.field("plugin"))
        {
            if plugin.trim().is_empty() {
                self.error(f.span(), format!("{} is empty; name the plugin to run", place.field("plugin")));
            } else {
                draft.plugin = Some((plugin, f.span()));
            }
        }
        if let Some(f) = get(&fields, "needs") {
            draft.needs = self.needs(f.value, &place);
        }
        if let Some(f) = get(&fields, "config") {
            draft.config_span = Some(f.span());
            if matches!(view(f.value), View::Map(_)) {
                if let Some(config) = self.json(f.value, "config", &place, 0) {
                    draft.config = config;
                }
            } else {
                self.type_error(f.value, "a mapping", &place.field("config"));
            }
        }
        if let Some(f) = get(&fields, "map") {
            draft.map_span = Some(f.span());
            draft.map = self.map_spec(f.value, &place);
        }
        if let Some(f) = get(&fields, "retry") {
            draft.retry = self.retry(f.value, &place);
        }
        if let Some(f) = get(&fields, "timeout") {
            draft.timeout = self.timeout(f.value, &place);
        }
        if let Some(f) = get(&fields, "limits") {
            draft.limits = self.limits(f.value, &place);
        }
        if let Some(f) = get(&fields, "grants") {
            draft.grants_span = Some(f.span());
            draft.grants = self.grants(f.value, &place);
        }
        Some(draft)
    }

    /// Checks the shape of a step id; reports it if it is wrong.
    fn check_id(&mut self, id: &str, span: Span) {
        if is_valid_step_id(id) {
            return;
        }
        let rule = format!(
            "ids are lowercase letters, digits, `-` and `_`, start with a letter or digit, and have at most {MAX_STEP_ID_LEN} characters"
        );
        let fixed = fix_step_id(id);
        let hint = if is_valid_step_id(&fixed) { format!("; try `{fixed}`") } else { String::new() };
        self.error(span, format!("invalid step id `{id}`: {rule}{hint}"));
    }
}

/// Whether `id` matches `[a-z0-9][a-z0-9_-]*` and has at most [`MAX_STEP_ID_LEN`] characters.
pub(crate) fn is_valid_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    id.chars().count() <= MAX_STEP_ID_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A best-effort valid id close to `id`, for suggestions.
fn fix_step_id(id: &str) -> String {
    let mut fixed: String = id
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '-' }
        })
        .collect();
    fixed = fixed.trim_start_matches(['-', '_']).to_owned();
    fixed.chars().take(MAX_STEP_ID_LEN).collect()
}

/// Turns a YAML scanner error into a [`WorkflowError::Syntax`].
fn syntax_error(source_name: &str, text: &str, error: &ScanError) -> WorkflowError {
    let marker = error.marker();
    let span = marker_span(marker);
    let message = if error.info().starts_with("duplicated key") {
        // The marker points at the repeated key: show it.
        let key: String = text
            .chars()
            .skip(marker.index())
            .take_while(|c| *c != ':' && *c != '\n' && *c != ',' && *c != '}')
            .collect();
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() {
            "duplicate key in mapping; each key may appear only once".to_owned()
        } else {
            format!("duplicate key `{key}` in mapping; each key may appear only once")
        }
    } else {
        format!("invalid yaml: {}", error.info())
    };
    WorkflowError::Syntax { source_name: source_name.to_owned(), span, message }
}

/// Upper bound on the estimated block nesting of any line (see [`too_deep`]).
const MAX_NESTING_ESTIMATE: usize = 128;
/// The YAML parser rejects flow collections nested deeper than this.
const PARSER_FLOW_LIMIT: usize = 255;
/// Upper bound on the estimated depth of the loaded tree when anchors are used.
const MAX_ALIASED_DEPTH_ESTIMATE: usize = 600;

/// The YAML parser recurses once per nesting level (and aliases are expanded by recursive
/// cloning), so a pathologically nested file could overflow the stack. This rejects such files
/// up front, with cheap over-estimates:
///
/// - block collections nest either by indenting (at most two levels per column: a sequence may
///   sit at its parent key's indentation) or through indicators on one line (`- - x`,
///   `? - x`, `- a: b`), each followed by a blank;
/// - flow collections nest at most [`PARSER_FLOW_LIMIT`] deep (the parser enforces it), and
///   never deeper than the number of `[` and `{` in the file;
/// - each anchor can at most stack one more such tree under an alias.
fn too_deep(text: &str) -> Option<(Span, &'static str)> {
    let mut deepest_block = 0usize;
    let mut anchors = 0usize;
    let mut openers = 0usize;
    for (number, line) in text.split('\n').enumerate() {
        // A lone `\r` is a line break too.
        for part in line.split('\r') {
            let indent = part.chars().take_while(|c| *c == ' ').count();
            let mut indicators = 0usize;
            let mut previous = ' ';
            let mut counting = true;
            let mut chars = part.chars().peekable();
            while let Some(c) = chars.next() {
                let next_is_blank = chars.peek().is_none_or(|n| n.is_whitespace());
                match c {
                    '[' | '{' => openers += 1,
                    '&' if !next_is_blank => anchors += 1,
                    _ => {}
                }
                if counting {
                    match c {
                        // Block collections cannot start after a comment, a flow collection or
                        // a quoted scalar on the same line: stop counting there.
                        '#' if previous.is_whitespace() => counting = false,
                        '[' | '{' | '"' | '\'' => counting = false,
                        '-' | '?' | ':' if next_is_blank => indicators += 1,
                        _ => {}
                    }
                }
                previous = c;
            }
            let estimate = indent.saturating_mul(2).saturating_add(indicators).saturating_add(2);
            if estimate > MAX_NESTING_ESTIMATE {
                return Some((
                    Span::new(number + 1, 1),
                    "this line is indented or nested too deeply for a workflow file; flatten the structure",
                ));
            }
            deepest_block = deepest_block.max(estimate);
        }
    }
    let tree = deepest_block.saturating_add(openers.min(PARSER_FLOW_LIMIT)).saturating_mul(anchors.saturating_add(1));
    if anchors > 0 && tree > MAX_ALIASED_DEPTH_ESTIMATE {
        return Some((
            Span::new(1, 1),
            "this file combines yaml anchors with deep nesting, which could expand too deeply; inline the aliased values or flatten the structure",
        ));
    }
    None
}

/// The most yaml nodes a workflow file may stand for, an alias counted as a
/// copy of everything it names: real workflows have a few hundred, and the
/// loader would otherwise build every copy (an "alias bomb" of 30 lines grows
/// to gigabytes).
const MAX_EXPANDED_NODES: u64 = 100_000;

/// The largest workflow file read, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Counts, from the parser's events and before anything is built, how many
/// nodes the file stands for, each alias as a copy of what it names, in keys
/// as in values (the loader's own budget counts a complex key as one node).
/// Syntax errors are left to the loader, which reports them with context;
/// complex keys themselves are reported later, as a field problem.
fn expansion_problem(text: &str) -> Option<(Span, String)> {
    // Open collections: (anchor, nodes counted before it started).
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut sizes: std::collections::HashMap<usize, u64> = std::collections::HashMap::new();
    let mut nodes: u64 = 0;
    for event in saphyr_parser::Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return None };
        match event {
            saphyr_parser::Event::Alias(id) => nodes = nodes.saturating_add(sizes.get(&id).copied().unwrap_or(1)),
            saphyr_parser::Event::Scalar(_, _, anchor, _) => {
                nodes = nodes.saturating_add(1);
                if anchor > 0 {
                    sizes.insert(anchor, 1);
                }
            }
            saphyr_parser::Event::SequenceStart(anchor, _) | saphyr_parser::Event::MappingStart(anchor, _) => {
                open.push((anchor, nodes));
                nodes = nodes.saturating_add(1);
            }
            saphyr_parser::Event::SequenceEnd | saphyr_parser::Event::MappingEnd => {
                if let Some((anchor, before)) = open.pop()
                    && anchor > 0
                {
                    sizes.insert(anchor, nodes - before);
                }
            }
            _ => {}
        }
        if nodes > MAX_EXPANDED_NODES {
            return Some((
                marker_span(&span.start),
                format!(
                    "this file's anchors and aliases expand to more than {MAX_EXPANDED_NODES} yaml nodes; \
                     a workflow needs far fewer: inline the aliased values"
                ),
            ));
        }
    }
    None
}

/// A workflow with nothing in it, for files too broken to say more.
fn empty_workflow(source_name: &str) -> Workflow {
    Workflow {
        name: String::new(),
        version: String::new(),
        description: None,
        deadline: DEFAULT_JOB_DEADLINE,
        defaults: Defaults::default(),
        input: None,
        steps: Vec::new(),
        source: source_name.to_owned(),
    }
}

pub(super) fn parse(source_name: &str, text: &str) -> Result<Workflow, WorkflowError> {
    let (workflow, diagnostics) = parse_partial(source_name, text)?;
    WorkflowError::from_diagnostics(source_name, diagnostics)?;
    Ok(workflow)
}

pub(super) fn parse_partial(source_name: &str, text: &str) -> Result<(Workflow, Vec<Diagnostic>), WorkflowError> {
    if text.len() > MAX_FILE_BYTES {
        let message =
            format!("the file is larger than the {} a workflow file may be", super::human_size(MAX_FILE_BYTES as u64));
        return Err(WorkflowError::Syntax { source_name: source_name.to_owned(), span: Span::new(1, 1), message });
    }
    if let Some((span, message)) = too_deep(text) {
        return Err(WorkflowError::Syntax { source_name: source_name.to_owned(), span, message: message.to_owned() });
    }
    if let Some((span, message)) = expansion_problem(text) {
        return Err(WorkflowError::Syntax { source_name: source_name.to_owned(), span, message });
    }
    let docs = MarkedYaml::load_from_str(text).map_err(|e| syntax_error(source_name, text, &e))?;
    let mut cx = Cx::new(source_name, text);
    let Some(root) = docs.first() else {
        cx.error(Span::new(1, 1), "the file is empty; a workflow needs `name`, `version` and `steps`");
        return Ok((empty_workflow(source_name), cx.diagnostics));
    };
    if let Some(second) = docs.get(1) {
        cx.error(span_of(second), "expected a single yaml document, found more than one; remove the `---` separator");
    }
    let View::Map(map) = view(root) else {
        let found = kind(root);
        cx.error(
            span_of(root),
            format!("expected a mapping with `name`, `version` and `steps` at the top level, found {found}"),
        );
        return Ok((empty_workflow(source_name), cx.diagnostics));
    };
    let top = Place::top();
    let root_span = span_of(root);
    let fields = cx.fields(map, TOP_FIELDS, &top.itself());

    let mut name = None;
    if let Some(f) = cx.require(&fields, "name", root_span, &top.itself())
        && let Some(text) = cx.text_field(f.value, "`name`")
    {
        if text.trim().is_empty() {
            cx.error(f.span(), "`name` is empty; give the workflow a name");
        } else {
            name = Some(text);
        }
    }
    let mut version = None;
    if let Some(f) = cx.require(&fields, "version", root_span, &top.itself())
        && let Some(text) = cx.text_field(f.value, "`version`")
    {
        if text.trim().is_empty() {
            cx.error(f.span(), "`version` is empty; use a version such as \"1.0\"");
        } else {
            version = Some(text);
        }
    }
    let description = get(&fields, "description").and_then(|f| cx.text_field(f.value, "`description`"));
    let deadline = get(&fields, "deadline").and_then(|f| match cx.duration(f.value, "`deadline`") {
        Some(Duration::ZERO) => {
            cx.error(f.span(), "`deadline` is 0: every job would fail at once; use a duration such as `30m`");
            None
        }
        other => other,
    });
    let defaults = get(&fields, "defaults").map_or_else(DefaultsDraft::default, |f| cx.defaults(f.value));
    let input = get(&fields, "input").and_then(|f| cx.input(f.value, name.as_deref().unwrap_or_default()));

    let mut drafts = Vec::new();
    if let Some(f) = cx.require(&fields, "steps", root_span, &top.itself()) {
        match view(f.value) {
            View::Seq([]) => {
                cx.error(f.span(), "`steps` is empty; a workflow needs at least one step");
            }
            View::Seq(items) => {
                drafts = items.iter().enumerate().filter_map(|(i, item)| cx.step(item, i)).collect();
            }
            View::Null => cx.error(f.span(), "`steps` is empty; a workflow needs at least one step"),
            _ => cx.type_error(f.value, "a list of steps", "`steps`"),
        }
    }

    // Merge defaults into each step and check what depends on the merge.
    let default_retry = defaults.retry.over(RetryPolicy::default());
    for draft in &drafts {
        if draft.retry.span.is_some() {
            let merged = draft.retry.over(default_retry);
            cx.check_backoff_order(&draft.retry, merged, &Place::step(draft.label.clone()));
        }
    }

    // Ids, needs and cycles.
    let nodes: Vec<GraphNode<'_>> = drafts
        .iter()
        .map(|d| GraphNode {
            id: d.id.as_ref().map(|(id, span)| (id.as_str(), *span)),
            fixed_id: d
                .id
                .as_ref()
                .filter(|(id, _)| !is_valid_step_id(id))
                .map(|(id, _)| fix_step_id(id))
                .filter(|fixed| is_valid_step_id(fixed)),
            label: d.label.as_str(),
            needs: d.needs.as_slice(),
        })
        .collect();
    for (span, message) in graph_problems(&nodes) {
        cx.error(span, message);
    }

    // Best effort: steps without an id or a plugin are left out (they were reported).
    let mut steps = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let (Some((id, id_span)), Some((plugin, plugin_span))) = (draft.id, draft.plugin) else {
            continue;
        };
        let limits = draft.limits.over(&defaults.limits);
        let timeout = draft.timeout.or(defaults.timeout);
        let (needs, need_spans): (Vec<String>, Vec<Span>) = draft.needs.into_iter().unzip();
        steps.push(Arc::new(StepSpec {
            id,
            plugin,
            needs,
            config: draft.config,
            map: draft.map,
            retry: draft.retry.over(default_retry),
            timeout: timeout.map(|(d, _)| d),
            limits: limits.values(),
            grants: draft.grants,
            span: draft.span,
            spans: StepSpans {
                id: id_span,
                plugin: plugin_span,
                needs: need_spans,
                config: draft.config_span,
                map: draft.map_span,
                retry: draft.retry.span,
                timeout: timeout.map(|(_, s)| s),
                limits: limits.spans(),
                grants: draft.grants_span,
            },
        }));
    }
    let mut diagnostics = cx.diagnostics;
    diagnostics.sort_by_key(|d| d.span);
    let workflow = Workflow {
        name: name.unwrap_or_default(),
        version: version.unwrap_or_default(),
        description,
        deadline: deadline.unwrap_or(DEFAULT_JOB_DEADLINE),
        input,
        defaults: Defaults {
            timeout: defaults.timeout.map(|(d, _)| d),
            retry: default_retry,
            limits: defaults.limits.values(),
            spans: DefaultsSpans {
                defaults: defaults.span,
                timeout: defaults.timeout.map(|(_, s)| s),
                retry: defaults.retry.span,
                limits: defaults.limits.spans(),
            },
        },
        steps,
        source: source_name.to_owned(),
    };
    Ok((workflow, diagnostics))
}
