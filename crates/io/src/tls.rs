//! TLS for node connections: rustls with the ring provider. The caller's options (Node's `tls`
//! shape: `ca`, `cert`, `key`, `servername`, `rejectUnauthorized`) become one rustls client
//! configuration shared by every connection, seeds, discovered nodes and subscriber connections
//! alike, so with TLS configured no plaintext connection is ever made.
//!
//! Verification follows Node's rules: `ca` replaces the default roots (Mozilla's, compiled in so
//! nothing depends on the OS store); the name checked is `servername` when given, else the host
//! we connect to; SNI carries that name when it is a DNS name and is left out for IP addresses
//! (RFC 6066 forbids literal IPs in SNI).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The caller's TLS options, as PEM bytes. The default verifies against Mozilla's roots.
#[derive(Clone)]
pub struct TlsConfig {
    /// Trusted CA certificates (one or more PEM blocks); None trusts Mozilla's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain for servers with `tls-auth-clients yes`.
    pub cert_pem: Option<Vec<u8>>,
    /// The private key of `cert_pem` (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key_pem: Option<Vec<u8>>,
    /// The name to verify the certificate against and send as SNI, instead of each node's host.
    pub servername: Option<String>,
    /// false accepts any certificate (testing only: it gives up all protection from TLS).
    pub reject_unauthorized: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_pem: None,
            cert_pem: None,
            key_pem: None,
            servername: None,
            // Verification is on unless someone asks, by name, for it to be off.
            reject_unauthorized: true,
        }
    }
}

// Hand-written so that a `{:?}` of the options (a panic message, a log line) never prints the
// private key.
impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .field("cert_pem", &self.cert_pem.as_ref().map(|c| c.len()))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "[redacted]"))
            .field("servername", &self.servername)
            .field("reject_unauthorized", &self.reject_unauthorized)
            .finish()
    }
}

impl TlsConfig {
    /// Checks the options (PEM parses, cert and key come together, servername is a valid name)
    /// so that mistakes surface when the client is created, not on every connection attempt.
    /// The message names the option, never its content.
    pub fn check(&self) -> Result<(), String> {
        Tls::build(self).map(|_| ())
    }
}

/// What a connection needs to start TLS: the shared rustls configuration and the fixed name.
#[derive(Clone)]
pub(crate) struct Tls {
    /// Err when the options did not build (normally caught earlier by `TlsConfig::check`): every
    /// connection then fails with this message instead of falling back to plaintext.
    connector: Result<(TlsConnector, Option<ServerName<'static>>), String>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.connector.is_ok() {
            "Tls(ready)"
        } else {
            "Tls(invalid options)"
        })
    }
}

impl Tls {
    pub fn new(cfg: &TlsConfig) -> Tls {
        Tls {
            connector: Tls::build(cfg),
        }
    }

    fn build(cfg: &TlsConfig) -> Result<(TlsConnector, Option<ServerName<'static>>), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let builder = if cfg.reject_unauthorized {
            builder.with_root_certificates(roots(cfg.ca_pem.as_deref())?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        };
        let config = match (&cfg.cert_pem, &cfg.key_pem) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| "redisOptions.tls.cert is not a valid PEM certificate chain")?;
                if chain.is_empty() {
                    return Err("redisOptions.tls.cert contains no PEM certificate".into());
                }
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
                    "redisOptions.tls.key is not an unencrypted PEM private key \
                     (PKCS#8, PKCS#1 or SEC1)"
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("redisOptions.tls.cert/key rejected: {e}"))?
            }
            _ => return Err("redisOptions.tls.cert and redisOptions.tls.key go together".into()),
        };
        let name = match &cfg.servername {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|_| "redisOptions.tls.servername is not a valid host name")?,
            ),
            None => None,
        };
        Ok((TlsConnector::from(Arc::new(config)), name))
    }

    /// Runs the TLS handshake on a connected socket. Errors are rustls' own words (e.g.
    /// "invalid peer certificate: UnknownIssuer"), which never include key material.
    pub async fn connect(
        &self,
        stream: TcpStream,
        host: &str,
    ) -> Result<TlsStream<TcpStream>, String> {
        let (connector, fixed) = self.connector.as_ref().map_err(|e| e.clone())?;
        let name = match fixed {
            Some(n) => n.clone(),
            // An IP literal becomes ServerName::IpAddress: rustls then sends no SNI and checks
            // the certificate's IP SANs.
            None => ServerName::try_from(host.to_string()).map_err(|_| {
                format!("\"{host}\" is neither a DNS name nor an IP address to verify against")
            })?,
        };
        connector
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())
    }
}

fn roots(ca_pem: Option<&[u8]>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(pem) = ca_pem else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "redisOptions.tls.ca is not valid PEM")?;
    if certs.is_empty() {
        return Err("redisOptions.tls.ca contains no PEM certificate".into());
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("redisOptions.tls.ca holds an unusable certificate: {e}"))?;
    }
    Ok(roots)
}

/// `rejectUnauthorized: false`: any certificate is accepted (the handshake signatures are still
/// checked, so the session keys belong to whoever holds the presented certificate).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether an I/O error comes from the TLS layer (bad certificate, an alert such as the server's
/// "certificate required"), so it is reported as TLS rather than as a refused connection.
pub(crate) fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

/// What to look at for the common TLS failures, appended to rustls' terse words.
pub(crate) fn tls_hint(error: &str) -> &'static str {
    if error.contains("UnknownIssuer") || error.contains("BadSignature") {
        " (is redisOptions.tls.ca the CA that signed the server's certificate?)"
    } else if error.contains("NotValidForName") {
        " (the certificate does not name this host: see redisOptions.tls.servername)"
    } else if error.contains("CertificateRequired") {
        " (the server wants a client certificate: redisOptions.tls.cert and key)"
    } else if error.contains("corrupt message") || error.contains("InvalidContentType") {
        " (is this port serving TLS?)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_and_never_echo_their_content() {
        let secret = b"-----BEGIN PRIVATE KEY-----\nS3cr3t\n-----END PRIVATE KEY-----\n";
        let cfg = TlsConfig {
            cert_pem: Some(b"not pem".to_vec()),
            key_pem: Some(secret.to_vec()),
            ..TlsConfig::default()
        };
        let err = cfg.check().unwrap_err();
        assert!(err.contains("redisOptions.tls.cert"), "{err}");
        assert!(!format!("{cfg:?}").contains("S3cr3t"));

        let only_cert = TlsConfig {
            cert_pem: Some(Vec::new()),
            ..TlsConfig::default()
        };
        assert!(only_cert.check().unwrap_err().contains("go together"));

        let bad_ca = TlsConfig {
            ca_pem: Some(b"garbage".to_vec()),
            ..TlsConfig::default()
        };
        assert!(bad_ca.check().unwrap_err().contains("redisOptions.tls.ca"));

        let bad_name = TlsConfig {
            servername: Some("not a name!".into()),
            ..TlsConfig::default()
        };
        assert!(bad_name.check().unwrap_err().contains("servername"));
    }

    /// Connects to a loopback listener that records the ClientHello's SNI, then drops it.
    async fn sni_sent(cfg: &TlsConfig, host: &str) -> Option<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let acceptor = rustls::server::Acceptor::default();
            let start = tokio_rustls::LazyConfigAcceptor::new(acceptor, sock)
                .await
                .unwrap();
            start.client_hello().server_name().map(str::to_string)
        });
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let tls = Tls::new(cfg);
        // The recording server never finishes the handshake: only the ClientHello matters.
        let host = host.to_string();
        let client = tokio::spawn(async move { drop(tls.connect(tcp, &host).await) });
        let sni = server.await.unwrap();
        client.abort();
        sni
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sni_is_the_dns_name_or_servername_and_absent_for_ips() {
        let cfg = TlsConfig::default();
        assert_eq!(
            sni_sent(&cfg, "localhost").await.as_deref(),
            Some("localhost")
        );
        assert_eq!(sni_sent(&cfg, "127.0.0.1").await, None);
        let named = TlsConfig {
            servername: Some("redis.example".into()),
            ..TlsConfig::default()
        };
        assert_eq!(
            sni_sent(&named, "127.0.0.1").await.as_deref(),
            Some("redis.example")
        );
    }

    #[test]
    fn defaults_build_with_the_compiled_in_roots() {
        assert!(TlsConfig::default().reject_unauthorized);
        assert!(TlsConfig::default().check().is_ok());
        let insecure = TlsConfig {
            reject_unauthorized: false,
            ..TlsConfig::default()
        };
        assert!(insecure.check().is_ok());
    }
}
