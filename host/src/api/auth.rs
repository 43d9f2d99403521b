//! Placeholder until the auth branch lands: every caller is anonymous with
//! every scope (the server binds to loopback only without auth).

use std::collections::BTreeSet;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Submit and cancel jobs.
    Submit,
    /// Read jobs, results, workflows and dead letters.
    Read,
    /// Decide reviews.
    Review,
    /// Everything, including replaying dead letters.
    Admin,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Loggable id (key id or JWT subject).
    pub id: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
}
