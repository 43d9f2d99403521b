//! The server loop: accepts connections (plain, or TLS with rustls), serves
//! HTTP/1.1 and HTTP/2 with a header read timeout, bounds requests in
//! flight and their duration, and on shutdown stops accepting and lets
//! open requests finish within a grace period.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use super::{ApiLimits, Problem};

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS file is missing or unusable.
    #[error("TLS: {path}: {reason}")]
    Tls {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `app` with the request limits of `limits`: more than
/// `max_concurrent_requests` at once are refused `503`, a request that
/// takes longer than `request_timeout` is answered `408`.
pub(super) fn with_limits(app: Router, limits: &ApiLimits) -> Router {
    let timeout = limits.request_timeout;
    app.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |error: tower::BoxError| async move {
                if error.is::<tower::timeout::error::Elapsed>() {
                    Problem::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        format!("the request took longer than {timeout:?}; send it again"),
                    )
                } else if error.is::<tower::load_shed::error::Overloaded>() {
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "the server is handling as many requests as it allows; try again shortly",
                    )
                    .retry_after(1)
                } else {
                    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string())
                }
            }))
            .load_shed()
            .concurrency_limit(limits.max_concurrent_requests.max(1))
            .timeout(timeout),
    )
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves, then waits up to `grace` for open requests.
///
/// # Errors
///
/// [`ServeError::Tls`] when the certificate or key cannot be loaded.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<&TlsFiles>,
    limits: &ApiLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), ServeError> {
    let acceptor = tls.map(tls_acceptor).transpose()?;
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let handshake_timeout = limits.header_read_timeout;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &acceptor {
            None => {
                tokio::spawn(async move {
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "open HTTP requests did not finish within the grace period; closing them");
    }
    Ok(())
}

fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let error = |path: &PathBuf, reason: String| ServeError::Tls { path: path.display().to_string(), reason };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(&files.cert, format!("cannot read the certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(error(&files.cert, "holds no PEM certificate".to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| error(&files.key, format!("cannot read the private key: {e}")))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| error(&files.key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
