//! Integration tests: real components built from `plugins/` and
//! `tests/components/`, run by the real engine (one test binary, as in
//! wasmtime's `tests/all`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nats;
mod servers;
mod support;

mod api;
mod api_auth;
mod api_serve;
mod authoring;
mod cache;
mod cancel;
mod capabilities;
mod cli;
mod cluster;
mod compute_slots;
mod contracts;
mod delivery;
mod encryption;
mod fleet;
mod loading;
mod nats_auth;
mod notify;
mod pdf;
mod polyglot;
mod queue;
mod retention;
mod retries;
mod sandbox;
mod security;
mod soak;
