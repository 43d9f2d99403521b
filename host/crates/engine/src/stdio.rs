//! Guest stdout and stderr, turned into tracing events line by line through
//! the attempt's [`GuestLog`] instead of reaching the host's own stdio.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use weft_capabilities::logging::{GuestLog, LogLevel, MAX_LOG_LINE_BYTES};

/// A guest output stream that emits each complete line as a tracing event.
pub(crate) struct TracingOutput {
    log: Arc<Mutex<GuestLog>>,
    source: &'static str,
    partial: Vec<u8>,
}

impl TracingOutput {
    pub(crate) fn new(log: Arc<Mutex<GuestLog>>, source: &'static str) -> Self {
        TracingOutput { log, source, partial: Vec::new() }
    }

    fn level(&self) -> LogLevel {
        if self.source == "stderr" { LogLevel::Warn } else { LogLevel::Info }
    }

    fn accept(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..newline]);
            self.flush_line();
            bytes = &bytes[newline + 1..];
        }
        // A line longer than the cap is emitted in pieces rather than buffered without bound.
        let room = MAX_LOG_LINE_BYTES.saturating_sub(self.partial.len());
        let (kept, rest) = bytes.split_at(bytes.len().min(room));
        self.partial.extend_from_slice(kept);
        if !rest.is_empty() || self.partial.len() >= MAX_LOG_LINE_BYTES {
            self.flush_line();
            if !rest.is_empty() {
                self.accept(rest);
            }
        }
    }

    fn flush_line(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        let level = self.level();
        self.log.lock().unwrap_or_else(PoisonError::into_inner).emit(self.source, level, &line);
    }
}

impl Clone for TracingOutput {
    fn clone(&self) -> Self {
        TracingOutput::new(self.log.clone(), self.source)
    }
}

impl Drop for TracingOutput {
    fn drop(&mut self) {
        self.flush_line();
    }
}

impl IsTerminal for TracingOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TracingOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for TracingOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TracingOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for TracingOutput {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_line();
        Poll::Ready(Ok(()))
    }
}
