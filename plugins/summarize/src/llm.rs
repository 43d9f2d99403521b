//! The `llm` mode as plain Rust: prompt templates, cutting long input into
//! windows at sentence boundaries, and map-reduce over the windows with a
//! caller-supplied `ask` function (the component passes the host's `llm`
//! capability; tests pass a closure).

use crate::extract::split_sentences;

/// Settings of the `llm` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The prompt for one window; `{{text}}` is replaced by the text.
    pub prompt: String,
    /// The prompt that merges partial summaries; `{{text}}` as above.
    pub reduce_prompt: String,
    /// The model to ask for; the host's default when absent.
    pub model: Option<String>,
    /// Upper bound on generated tokens per call.
    pub max_tokens: u32,
    /// The most characters of text sent in one call.
    pub window_chars: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prompt: "Summarise the following document in at most five sentences. Keep masked tags such as \
                     [EMAIL] as they are and do not invent facts.\n\n{{text}}"
                .into(),
            reduce_prompt: "These are summaries of consecutive parts of one document. Merge them into one summary \
                            of at most five sentences, without repeating yourself.\n\n{{text}}"
                .into(),
            model: None,
            max_tokens: 512,
            window_chars: 12_000,
        }
    }
}

impl Settings {
    /// Checks the templates and sizes.
    ///
    /// # Errors
    ///
    /// What is wrong, for a fatal config error.
    pub fn check(&self) -> Result<(), String> {
        for (name, template) in [("prompt", &self.prompt), ("reduce_prompt", &self.reduce_prompt)] {
            if !template.contains("{{text}}") {
                return Err(format!("`{name}` must contain `{{{{text}}}}` where the text goes"));
            }
        }
        if self.window_chars < 200 {
            return Err("`window_chars` must be at least 200".into());
        }
        if self.max_tokens == 0 {
            return Err("`max_tokens` must be at least 1".into());
        }
        Ok(())
    }
}

/// Cuts texts into windows of at most `limit` characters, at item and
/// sentence boundaries (a single sentence longer than `limit` is cut hard,
/// at a character boundary).
pub fn windows(texts: &[String], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut current_chars = 0;
    let push = |piece: &str, out: &mut Vec<String>, current: &mut String, current_chars: &mut usize| {
        let chars = piece.chars().count();
        if *current_chars > 0 && *current_chars + 1 + chars > limit {
            out.push(std::mem::take(current));
            *current_chars = 0;
        }
        if *current_chars > 0 {
            current.push(' ');
            *current_chars += 1;
        }
        current.push_str(piece);
        *current_chars += chars;
    };
    for text in texts {
        for sentence in split_sentences(text) {
            let chars: Vec<char> = sentence.chars().collect();
            for piece in chars.chunks(limit) {
                let piece: String = piece.iter().collect();
                push(&piece, &mut out, &mut current, &mut current_chars);
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Summarises with map-reduce: each window is summarised, and the partial
/// summaries merged (in windows again if they are long) until one remains.
/// Returns the summary and the number of calls made.
///
/// # Errors
///
/// The first error of `ask`.
pub fn map_reduce<E>(
    texts: &[String],
    settings: &Settings,
    mut ask: impl FnMut(&str) -> Result<String, E>,
) -> Result<(String, usize), E> {
    let mut calls = 0;
    let mut parts = windows(texts, settings.window_chars);
    if parts.is_empty() {
        return Ok((String::new(), 0));
    }
    let mut template = &settings.prompt;
    // Each round shrinks the text unless the model answers at length; the
    // bound keeps a verbose model from looping forever.
    for _round in 0..8 {
        let mut summaries = Vec::with_capacity(parts.len());
        for part in &parts {
            calls += 1;
            summaries.push(ask(&template.replace("{{text}}", part))?.trim().to_string());
        }
        if summaries.len() == 1 {
            return Ok((summaries.remove(0), calls));
        }
        parts = windows(&[summaries.join("\n\n")], settings.window_chars);
        if parts.len() == 1 {
            calls += 1;
            let merged = ask(&settings.reduce_prompt.replace("{{text}}", &parts[0]))?;
            return Ok((merged.trim().to_string(), calls));
        }
        template = &settings.reduce_prompt;
    }
    Ok((parts.join("\n\n"), calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_respect_the_limit_and_sentences() {
        let text = "One two three. Four five six. Seven eight nine.".to_string();
        let parts = windows(std::slice::from_ref(&text), 30);
        assert_eq!(parts, vec!["One two three. Four five six.", "Seven eight nine."]);
        let long = "x".repeat(450);
        let parts = windows(&[long], 200);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![200, 200, 50]);
    }

    #[test]
    fn short_input_is_one_call_and_long_input_is_map_reduced() {
        let settings = Settings { window_chars: 200, ..Settings::default() };
        let mut prompts = Vec::new();
        let (summary, calls) = map_reduce(&["Short text.".to_string()], &settings, |p: &str| {
            prompts.push(p.to_string());
            Ok::<_, ()>("S".to_string())
        })
        .unwrap_or_default();
        assert_eq!((summary.as_str(), calls), ("S", 1));
        assert!(prompts[0].ends_with("Short text."));

        let long: Vec<String> = (0..10).map(|i| format!("Sentence number {i} is here. ").repeat(5)).collect();
        let mut reduce_calls = 0;
        let (summary, calls) = map_reduce(&long, &settings, |p: &str| {
            if p.starts_with("These are summaries") {
                reduce_calls += 1;
                Ok::<_, ()>("Merged.".to_string())
            } else {
                Ok("Part.".to_string())
            }
        })
        .unwrap_or_default();
        assert_eq!(summary, "Merged.");
        assert_eq!(reduce_calls, 1);
        assert!(calls > 2, "{calls}");
        let failed = map_reduce(&long, &settings, |_: &str| Err::<String, _>("rate limited"));
        assert_eq!(failed, Err("rate limited"));
    }
}
