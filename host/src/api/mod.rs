//! The HTTP API's building blocks that do not depend on the server: who a
//! caller is and what it may do (`auth`: API keys and JWTs, scopes), and
//! how often it may call (`rate_limit`: token buckets by key or address).
//! The server wires them in as middleware; they never touch NATS directly
//! (API keys are stored by the queue module).

pub mod auth;
pub mod rate_limit;
