//! Throw-away certificates made at test time, and `wss://` clients that trust only them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parkmate_protocol::{Role, ServerFrame};
use rustls::pki_types::CertificateDer;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::Client;

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files.
pub struct TestCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCert {
    pub fn generate(dir: &Path) -> TestCert {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("rcgen makes a certificate");
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        let pem = ck.cert.pem();
        std::fs::write(&cert_path, &pem).unwrap();
        std::fs::write(&key_path, ck.key_pair.serialize_pem()).unwrap();
        TestCert {
            cert_path,
            key_path,
            pem,
            der: ck.cert.der().clone(),
        }
    }

    /// A client configuration that trusts this certificate and nothing else.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    /// An HTTPS client for the publish API that trusts this certificate.
    pub fn http_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }
}

/// Opens `url` (`wss://…` or `ws://…`) with a bearer token, trusting `tls`; the handshake only.
pub async fn open(
    url: &str,
    token: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Client, WsError> {
    open_with(url, token, None, tls).await
}

/// [`open`], as a browser on `origin` would (with an `Origin` header).
pub async fn open_with(
    url: &str,
    token: &str,
    origin: Option<&str>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Client, WsError> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(Connector::Rustls(tls)),
    )
    .await?;
    Ok(Client { ws })
}

/// [`open`], then reads the `hello` and checks it is for `user_id`.
pub async fn connect(
    url: &str,
    keys: &parkmate_auth::TokenKeys,
    user_id: i64,
    role: Role,
    tls: Arc<rustls::ClientConfig>,
) -> Client {
    let mut c = open(url, &keys.mint(user_id, role, 3600), tls)
        .await
        .expect("handshake succeeds");
    match c.next_frame().await {
        ServerFrame::Hello { user_id: u, .. } => assert_eq!(u, user_id),
        other => panic!("expected hello, got {other:?}"),
    }
    c
}
