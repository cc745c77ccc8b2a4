//! Native TLS for a node that serves `wss://` and `https://` itself, without a proxy in front
//! (`PARKMATE_TLS_CERT` + `PARKMATE_TLS_KEY`). A cluster behind nginx terminates TLS there instead
//! (`docs/deployment.md`).
//!
//! [`TlsListener`] is an [`axum::serve::Listener`]: it hands the accept loop (`serve.rs`)
//! connections whose TLS handshake has finished, so everything the plain path does holds here
//! too — HTTP/1.1 with upgrades, the request-head deadline, the connection cap, per-connection
//! errors logged and dropped, and graceful shutdown (stop accepting, let requests in flight
//! finish). Sockets are still ours to close with 1012 (`startup.rs`).
//!
//! Handshakes run in their own tasks, each under [`HANDSHAKE_TIMEOUT`], so a peer that connects
//! and says nothing never stalls the accept loop and loses its place after the timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;

/// How long a peer has to complete its TLS handshake. A real client needs one or two round trips;
/// ten seconds covers a phone on a bad network and still frees a silent peer's place soon.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at once. Past this the listener stops accepting until one finishes, so a
/// connection storm (every client of a restarted node at once) waits in the kernel's backlog
/// rather than in our memory; each handshake holds a few KiB of rustls state.
pub const MAX_HANDSHAKES: usize = 1024;

/// A certificate chain or key that cannot serve: the start-up error names the file; the cause
/// follows in the error chain (`{:#}`), so the messages do not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read a PEM certificate from {path} (PARKMATE_TLS_CERT)")]
    Cert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("cannot read a PEM private key from {path} (PARKMATE_TLS_KEY)")]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the certificate {cert} and the private key {key} do not serve TLS together")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// Reads the PEM files and builds the server configuration, once, at start-up.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_error = |source| TlsError::Cert {
        path: files.cert.clone(),
        source,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(cert_error)?
        .collect::<Result<_, _>>()
        .map_err(cert_error)?;
    if chain.is_empty() {
        return Err(cert_error(rustls_pki_types::pem::Error::NoItemsFound));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.clone(),
        source,
    })?;
    let config_error = |source| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    // The provider is named rather than taken from the process default, which panics when more
    // than one provider is compiled in.
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            // Also checks that the key belongs to the certificate.
            .with_single_cert(chain, key)
            .map_err(config_error)?;
    // The server speaks HTTP/1.1 only (WebSockets upgrade from it); say so in ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and yields them once their TLS handshake is done.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    /// Handshakes in flight, at most [`MAX_HANDSHAKES`]. Dropping the listener (the accept loop
    /// does when shutdown starts) aborts them all.
    handshakes: JoinSet<(SocketAddr, Result<TlsStream<TcpStream>, HandshakeError>)>,
}

#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
}

impl TlsListener {
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        handshake_timeout: Duration,
    ) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshake_timeout,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    /// Cancel-safe, as the accept loop needs when shutdown interrupts it: a TCP accept or a join is either
    /// complete or not started, and handshakes in flight stay in the set.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                // axum's own accept: logs errors, and backs off when out of file descriptors.
                (tcp, peer) = axum::serve::Listener::accept(&mut self.tcp),
                    if self.handshakes.len() < MAX_HANDSHAKES =>
                {
                    let acceptor = self.acceptor.clone();
                    let limit = self.handshake_timeout;
                    self.handshakes.spawn(async move {
                        let result = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Ok(tls),
                            Ok(Err(e)) => Err(HandshakeError::Io(e)),
                            Err(_) => Err(HandshakeError::Timeout(limit)),
                        };
                        (peer, result)
                    });
                }
                Some(done) = self.handshakes.join_next() => match done {
                    Ok((peer, Ok(tls))) => return (tls, peer),
                    // A scanner, a plain-HTTP client or an expired certificate on the client's
                    // side: that peer's problem, logged quietly so it cannot flood the log.
                    Ok((peer, Err(e))) => {
                        metrics::counter!("parkmate_tls_handshake_failures_total").increment(1);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(e) => tracing::warn!(error = %e, "TLS handshake task failed"),
                },
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn files(dir: &std::path::Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn self_signed() -> rcgen::CertifiedKey {
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap()
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ck = self_signed();
        let (cert, key) = (ck.cert.pem(), ck.key_pair.serialize_pem());

        let f = files(dir.path(), "not a certificate", &key);
        let err = server_config(&f).unwrap_err().to_string();
        assert!(
            err.contains("cert.pem") && err.contains("PARKMATE_TLS_CERT"),
            "{err}"
        );

        let f = files(
            dir.path(),
            &cert,
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n",
        );
        let err = server_config(&f).unwrap_err().to_string();
        assert!(
            err.contains("key.pem") && err.contains("PARKMATE_TLS_KEY"),
            "{err}"
        );

        let f = TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: dir.path().join("key.pem"),
        };
        let err = server_config(&f).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");

        // A key that is not the certificate's.
        let other = self_signed();
        let f = files(dir.path(), &cert, &other.key_pair.serialize_pem());
        let err = server_config(&f).unwrap_err().to_string();
        assert!(err.contains("do not serve TLS together"), "{err}");

        let f = files(dir.path(), &cert, &key);
        assert!(server_config(&f).is_ok());
    }

    #[tokio::test]
    async fn a_silent_peer_neither_blocks_others_nor_keeps_its_place() {
        use axum::serve::Listener;
        let dir = tempfile::tempdir().unwrap();
        let ck = self_signed();
        let config = server_config(&files(
            dir.path(),
            &ck.cert.pem(),
            &ck.key_pair.serialize_pem(),
        ))
        .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        // Long enough that a real client is served well inside it: that the silent peer is still
        // connected when the client is served shows the handshakes ran side by side.
        let mut listener = TlsListener::new(tcp, config, Duration::from_secs(3));

        // Connects first and never says a word.
        let mut silent = TcpStream::connect(addr).await.unwrap();

        // A real client behind it still gets through.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let client = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            tls.flush().await.unwrap();
            tls
        };
        let (_client, (mut served, _peer)) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(client, listener.accept())
        })
        .await
        .expect("the real client is served while the silent one waits");
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // Had handshakes run one at a time, the silent peer would have been timed out and
        // dropped before the real client got its turn.
        let mut byte = [0u8; 1];
        assert!(
            matches!(silent.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the real client was served only after the silent peer's handshake ended"
        );

        // The silent peer's handshake task gives up after its time and drops the socket: the
        // peer reads end-of-stream (or a reset).
        let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte))
            .await
            .expect("the silent peer is disconnected after the handshake timeout");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    }
}
