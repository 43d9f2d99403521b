//! How an error reads when a user sees it: one line holding the error and
//! its causes. The library's error types stay structured (each module owns
//! its `thiserror` enum); this module only owns the rule for flattening one
//! into text, so every message joins its causes the same way. It never
//! defines an error type and never decides what is an error.

/// The error and its causes in one line, joined with `: `
/// ("error sending request: connection refused").
///
/// A cause whose text the line already holds is left out: many errors
/// repeat their source in their own message (`cannot read x: No such file
/// or directory`), and printing it again would say the same thing twice.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot read workflow x.yaml: {0}")]
        Repeats(#[source] std::io::Error),
        #[error("loading the workflow")]
        Wraps(#[source] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("sending the request")]
    struct Middle(#[source] std::io::Error);

    fn not_found() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn causes_are_joined_in_order() {
        let error = Outer::Wraps(Middle(not_found()));
        assert_eq!(error_chain(&error), "loading the workflow: sending the request: no such file");
    }

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let error = Outer::Repeats(not_found());
        assert_eq!(error_chain(&error), "cannot read workflow x.yaml: no such file");
    }

    #[test]
    fn an_error_without_causes_is_its_message() {
        assert_eq!(error_chain(&not_found()), "no such file");
    }
}
