//! The `logging` capability: guest log lines and guest stdout/stderr become
//! tracing events tagged with the job, step and attempt, with a per-attempt
//! budget so a chatty or hostile component cannot flood the host's logs.

/// Log lines one attempt may emit before the rest are dropped (and counted).
pub const DEFAULT_LOG_LINES_PER_ATTEMPT: u32 = 1000;
/// Longest single log line kept; longer ones are cut at a char boundary.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Where a guest's log lines go for one attempt.
#[derive(Debug)]
pub struct GuestLog {
    job_id: String,
    step: String,
    attempt: u32,
    lines_left: u32,
    dropped: u64,
    recent_stderr: std::collections::VecDeque<String>,
}

/// Stderr lines kept per attempt to explain a trap (a Rust panic message).
pub const RECENT_STDERR_LINES: usize = 5;

impl GuestLog {
    /// A log for one attempt of one step.
    pub fn new(job_id: &str, step: &str, attempt: u32) -> Self {
        GuestLog {
            job_id: job_id.to_string(),
            step: step.to_string(),
            attempt,
            lines_left: DEFAULT_LOG_LINES_PER_ATTEMPT,
            dropped: 0,
            recent_stderr: std::collections::VecDeque::new(),
        }
    }

    /// Emits one line from `source` (`log`, `stdout` or `stderr`).
    pub fn emit(&mut self, source: &'static str, level: LogLevel, message: &str) {
        if source == "stderr" {
            if self.recent_stderr.len() == RECENT_STDERR_LINES {
                self.recent_stderr.pop_front();
            }
            let line = truncate_at_char_boundary(message.trim_end(), MAX_LOG_LINE_BYTES / 8);
            self.recent_stderr.push_back(line.to_string());
        }
        if self.lines_left == 0 {
            self.dropped += 1;
            return;
        }
        self.lines_left -= 1;
        let message = truncate_at_char_boundary(message.trim_end_matches(['\r', '\n']), MAX_LOG_LINE_BYTES);
        // A component chooses its log text: it must not forge other lines.
        let message = weft_core::text::printable(message);
        let (job, step, attempt) = (&self.job_id, &self.step, self.attempt);
        match level {
            LogLevel::Trace => tracing::trace!(job.id = %job, step = %step, attempt, source, "{message}"),
            LogLevel::Debug => tracing::debug!(job.id = %job, step = %step, attempt, source, "{message}"),
            LogLevel::Info => tracing::info!(job.id = %job, step = %step, attempt, source, "{message}"),
            LogLevel::Warn => tracing::warn!(job.id = %job, step = %step, attempt, source, "{message}"),
            LogLevel::Error => tracing::error!(job.id = %job, step = %step, attempt, source, "{message}"),
        }
    }

    /// The last few stderr lines, oldest first (a panic message, typically).
    pub fn recent_stderr(&self) -> impl Iterator<Item = &str> {
        self.recent_stderr.iter().map(String::as_str)
    }

    /// Lines dropped because the budget ran out.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(
                job.id = %self.job_id,
                step = %self.step,
                attempt = self.attempt,
                dropped = self.dropped,
                "the step logged more than {DEFAULT_LOG_LINES_PER_ATTEMPT} lines; the rest were dropped"
            );
        }
    }
}

/// `text` cut to at most `max` bytes without splitting a UTF-8 character.
pub fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_counts_the_rest() {
        let mut log = GuestLog::new("j", "s", 1);
        for _ in 0..DEFAULT_LOG_LINES_PER_ATTEMPT + 5 {
            log.emit("log", LogLevel::Info, "x");
        }
        assert_eq!(log.dropped(), 5);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_at_char_boundary("héllo", 2), "h");
        assert_eq!(truncate_at_char_boundary("héllo", 3), "hé");
        assert_eq!(truncate_at_char_boundary("abc", 10), "abc");
    }
}
