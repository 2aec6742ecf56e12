//! Optional transport security: TLS 1.2/1.3 with `rustls` (ring provider), server
//! certificates and, optionally, client certificates (mutual TLS).
//!
//! Configuration follows the checked-parameter style: [`ServerTlsConfig`] and
//! [`ClientTlsConfig`] name PEM files, and their `check()` reads and validates them into the
//! ready-to-use [`ServerTls`] / [`ClientTls`], or a [`TlsConfigError`] naming the option and the
//! file at fault (missing file, no certificate, no key, key and certificate that do not match).
//! Failures on a live connection are [`RuntimeError::Tls`](crate::RuntimeError::Tls) with a
//! [`TlsFailure`] saying which side refused what.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A TLS option that cannot be used: the option (and file) at fault and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file cannot be read (missing, unreadable).
    #[error("TLS option `{field}`: cannot read {}: {source}", path.display())]
    Read {
        /// The option naming the file.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM text is malformed (a section without its end line, bad base64).
    #[error("TLS option `{field}` ({origin}): malformed PEM: {reason}")]
    BadPem {
        /// The option.
        field: &'static str,
        /// The file (or `in-memory PEM`).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The PEM holds no `CERTIFICATE` section.
    #[error(
        "TLS option `{field}` ({origin}): no certificate (expected a `-----BEGIN CERTIFICATE-----` section)"
    )]
    NoCertificate {
        /// The option.
        field: &'static str,
        /// The file (or `in-memory PEM`).
        origin: String,
    },
    /// The PEM holds no private key section.
    #[error(
        "TLS option `{field}` ({origin}): no private key (expected a `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section)"
    )]
    NoPrivateKey {
        /// The option.
        field: &'static str,
        /// The file (or `in-memory PEM`).
        origin: String,
    },
    /// The private key does not belong to the certificate, or rustls cannot use the pair
    /// (unsupported key type).
    #[error(
        "TLS options `{cert_field}` ({cert_origin}) and `{key_field}` ({key_origin}): {reason}"
    )]
    KeyMismatch {
        /// The certificate option.
        cert_field: &'static str,
        /// The certificate file.
        cert_origin: String,
        /// The key option.
        key_field: &'static str,
        /// The key file.
        key_origin: String,
        /// rustls' reason.
        reason: String,
    },
    /// rustls refused the option (a CA certificate it cannot parse, no usable trust anchor).
    #[error("TLS option `{field}` ({origin}): {reason}")]
    Rejected {
        /// The option.
        field: &'static str,
        /// The file (or `in-memory PEM`).
        origin: String,
        /// rustls' reason.
        reason: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("TLS option `{field}` is set but `{missing}` is not: a client identity needs both")]
    Incomplete {
        /// The option given.
        field: &'static str,
        /// The option missing.
        missing: &'static str,
    },
    /// The server name to check is not a DNS name or an IP address.
    #[error("TLS option `server_name`: {name:?} is not a DNS name or an IP address")]
    BadServerName {
        /// The name given.
        name: String,
    },
}

/// Which side refused what, for a TLS failure on a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// This side rejected the peer's certificate: signed by a CA it does not trust, issued for
    /// another name, expired, or missing where one is required.
    PeerCertificateRejected,
    /// The peer refused this side's certificate (unknown CA, bad certificate) or demands one
    /// that was not sent.
    CertificateRefusedByPeer,
    /// The peer does not speak TLS (a plain-TCP server answered the TLS handshake).
    NotTls,
    /// Any other TLS protocol failure.
    Protocol,
}

impl TlsFailure {
    /// Classifies a rustls error.
    pub fn of(error: &rustls::Error) -> Self {
        use rustls::Error;
        match error {
            Error::InvalidCertificate(_) | Error::NoCertificatesPresented => {
                Self::PeerCertificateRejected
            }
            Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied
                | AlertDescription::CertificateRequired,
            ) => Self::CertificateRefusedByPeer,
            Error::InvalidMessage(_) => Self::NotTls,
            _ => Self::Protocol,
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PeerCertificateRejected => "the peer's certificate was rejected",
            Self::CertificateRefusedByPeer => {
                "the peer refused this side's certificate (or requires one)"
            }
            Self::NotTls => "the peer does not speak TLS",
            Self::Protocol => "TLS protocol failure",
        })
    }
}

/// The edge server's TLS options, unchecked: PEM files.
///
/// ```
/// use std::sync::Arc;
/// use burn::prelude::*;
/// use coinfer_codec::Float32Codec;
/// use coinfer_runtime::{
///     ClientConfig, ClientTlsConfig, DeviceClient, EdgeServer, RuntimeError, ServerConfig,
///     ServerTlsConfig, TlsFailure,
/// };
/// use coinfer_split::{Network, zoo};
///
/// // A self-signed certificate for "localhost", written as PEM files.
/// let dir = std::env::temp_dir().join(format!("coinfer-tls-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
/// std::fs::write(dir.join("cert.pem"), certified.cert.pem())?;
/// std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem())?;
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// let (device_half, edge_half) = net.split(3)?;
/// let codec = Arc::new(Float32Codec);
/// let tls = ServerTlsConfig::new(dir.join("cert.pem"), dir.join("key.pem")).check()?;
/// let config = ServerConfig { tls: Some(tls), ..ServerConfig::default() };
/// let server = EdgeServer::bind("127.0.0.1:0", edge_half, codec.clone(), "plan-1", config)?.spawn()?;
///
/// // The client trusts the certificate and checks the name "localhost".
/// let tls = ClientTlsConfig::new(dir.join("cert.pem")).with_server_name("localhost").check()?;
/// let config = ClientConfig { tls: Some(tls), ..ClientConfig::default() };
/// let mut client = DeviceClient::connect(server.local_addr(), device_half.clone(), codec.clone(), "plan-1", config)?;
/// client.infer(Tensor::<4>::zeros([1, 1, 28, 28], &device))?;
///
/// // A client expecting another name refuses the server.
/// let tls = ClientTlsConfig::new(dir.join("cert.pem")).with_server_name("edge.example").check()?;
/// let config = ClientConfig { tls: Some(tls), ..ClientConfig::default() };
/// let refused = DeviceClient::connect(server.local_addr(), device_half, codec, "plan-1", config);
/// assert!(matches!(
///     refused,
///     Err(RuntimeError::Tls { failure: TlsFailure::PeerCertificateRejected, .. })
/// ));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsConfig {
    /// The server's certificate chain (leaf first), PEM.
    pub cert_chain: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub private_key: PathBuf,
    /// CA certificates that sign client certificates, PEM. When set, every client must present
    /// a certificate signed by one of them (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsConfig {
    /// Server TLS with a certificate chain and its key, no client certificates.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            client_ca: None,
        }
    }

    /// Requires client certificates signed by the CAs in `client_ca` (mutual TLS).
    pub fn with_client_ca(mut self, client_ca: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(client_ca.into());
        self
    }

    /// Reads and checks the files.
    ///
    /// # Errors
    /// [`TlsConfigError`] naming the option and file at fault.
    pub fn check(&self) -> Result<ServerTls, TlsConfigError> {
        let cert = Pem::read("cert_chain", &self.cert_chain)?;
        let key = Pem::read("private_key", &self.private_key)?;
        let ca = match &self.client_ca {
            Some(path) => Some(Pem::read("client_ca", path)?),
            None => None,
        };
        ServerTls::build(&cert, &key, ca.as_ref())
    }
}

/// Checked server TLS, ready for [`ServerConfig::tls`](crate::ServerConfig::tls).
///
/// Two values are equal when they are clones of one checked configuration.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    mutual: bool,
}

impl ServerTls {
    /// Server TLS from PEM text in memory (`client_ca`: require client certificates signed by
    /// these CAs).
    ///
    /// # Errors
    /// As [`ServerTlsConfig::check`].
    pub fn from_pem(
        cert_chain: &[u8],
        private_key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self, TlsConfigError> {
        Self::build(
            &Pem::memory("cert_chain", cert_chain),
            &Pem::memory("private_key", private_key),
            client_ca.map(|ca| Pem::memory("client_ca", ca)).as_ref(),
        )
    }

    fn build(cert: &Pem, key: &Pem, client_ca: Option<&Pem>) -> Result<Self, TlsConfigError> {
        let chain = cert.certificates()?;
        let private_key = key.private_key()?;
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| cert.rejected(e.to_string()))?;
        let builder = match client_ca {
            Some(ca) => {
                let roots = ca.roots()?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| ca.rejected(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, private_key)
            .map_err(|e| key_mismatch(cert, key, e))?;
        Ok(Self {
            config: Arc::new(config),
            mutual: client_ca.is_some(),
        })
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn requires_client_certificate(&self) -> bool {
        self.mutual
    }

    pub(crate) fn connection(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        rustls::ServerConnection::new(self.config.clone())
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

/// The device client's TLS options, unchecked: PEM files and the name to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsConfig {
    /// CA certificates the client trusts to sign the server's certificate, PEM.
    pub ca: PathBuf,
    /// The name the server's certificate must be issued for (DNS name or IP address); `None`
    /// checks the IP address the client connected to.
    pub server_name: Option<String>,
    /// The client's certificate chain, PEM, for servers that require one (mutual TLS).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    pub client_key: Option<PathBuf>,
}

impl ClientTlsConfig {
    /// Client TLS trusting the CAs in `ca`, checking the connected IP address.
    pub fn new(ca: impl Into<PathBuf>) -> Self {
        Self {
            ca: ca.into(),
            server_name: None,
            client_cert: None,
            client_key: None,
        }
    }

    /// Checks the server's certificate against `name` instead of the connected IP address.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents this certificate chain and key to servers that require one.
    pub fn with_client_identity(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Reads and checks the files and the server name.
    ///
    /// # Errors
    /// [`TlsConfigError`] naming the option and file at fault.
    pub fn check(&self) -> Result<ClientTls, TlsConfigError> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(_), None) => {
                return Err(TlsConfigError::Incomplete {
                    field: "client_cert",
                    missing: "client_key",
                });
            }
            (None, Some(_)) => {
                return Err(TlsConfigError::Incomplete {
                    field: "client_key",
                    missing: "client_cert",
                });
            }
            (None, None) => None,
        };
        let ca = Pem::read("ca", &self.ca)?;
        let identity = match identity {
            Some((cert, key)) => Some((
                Pem::read("client_cert", cert)?,
                Pem::read("client_key", key)?,
            )),
            None => None,
        };
        ClientTls::build(
            &ca,
            self.server_name.as_deref(),
            identity.as_ref().map(|(c, k)| (c, k)),
        )
    }
}

/// Checked client TLS, ready for [`ClientConfig::tls`](crate::ClientConfig::tls).
///
/// Two values are equal when they are clones of one checked configuration.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// Client TLS from PEM text in memory: the trusted CAs, the name to check (`None`: the
    /// connected IP address) and an optional client certificate chain and key.
    ///
    /// # Errors
    /// As [`ClientTlsConfig::check`].
    pub fn from_pem(
        ca: &[u8],
        server_name: Option<&str>,
        client_identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, TlsConfigError> {
        let identity = client_identity.map(|(cert, key)| {
            (
                Pem::memory("client_cert", cert),
                Pem::memory("client_key", key),
            )
        });
        Self::build(
            &Pem::memory("ca", ca),
            server_name,
            identity.as_ref().map(|(c, k)| (c, k)),
        )
    }

    fn build(
        ca: &Pem,
        server_name: Option<&str>,
        identity: Option<(&Pem, &Pem)>,
    ) -> Result<Self, TlsConfigError> {
        let server_name = server_name
            .map(|name| {
                ServerName::try_from(name.to_string())
                    .map_err(|_| TlsConfigError::BadServerName { name: name.into() })
            })
            .transpose()?;
        let roots = ca.roots()?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ca.rejected(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain = cert.certificates()?;
                let private_key = key.private_key()?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|e| key_mismatch(cert, key, e))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Whether the client presents a certificate.
    pub fn has_client_certificate(&self) -> bool {
        self.config.client_auth_cert_resolver.has_certs()
    }

    pub(crate) fn connection(
        &self,
        peer: IpAddr,
    ) -> Result<rustls::ClientConnection, rustls::Error> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(peer.into()));
        rustls::ClientConnection::new(self.config.clone(), name)
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.has_client_certificate())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn key_mismatch(cert: &Pem, key: &Pem, error: rustls::Error) -> TlsConfigError {
    TlsConfigError::KeyMismatch {
        cert_field: cert.field,
        cert_origin: cert.origin.clone(),
        key_field: key.field,
        key_origin: key.origin.clone(),
        reason: match error {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not belong to the certificate".to_string()
            }
            other => other.to_string(),
        },
    }
}

/// PEM text with the option and file it came from.
struct Pem {
    field: &'static str,
    origin: String,
    bytes: Vec<u8>,
}

impl Pem {
    fn read(field: &'static str, path: &Path) -> Result<Self, TlsConfigError> {
        let bytes = std::fs::read(path).map_err(|source| TlsConfigError::Read {
            field,
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            field,
            origin: path.display().to_string(),
            bytes,
        })
    }

    fn memory(field: &'static str, bytes: &[u8]) -> Self {
        Self {
            field,
            origin: "in-memory PEM".into(),
            bytes: bytes.to_vec(),
        }
    }

    fn bad_pem(&self, error: rustls_pki_types::pem::Error) -> TlsConfigError {
        TlsConfigError::BadPem {
            field: self.field,
            origin: self.origin.clone(),
            reason: error.to_string(),
        }
    }

    fn rejected(&self, reason: String) -> TlsConfigError {
        TlsConfigError::Rejected {
            field: self.field,
            origin: self.origin.clone(),
            reason,
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.bad_pem(e))?;
        if certs.is_empty() {
            return Err(TlsConfigError::NoCertificate {
                field: self.field,
                origin: self.origin.clone(),
            });
        }
        Ok(certs)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
                field: self.field,
                origin: self.origin.clone(),
            },
            other => self.bad_pem(other),
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certificates()? {
            roots
                .add(cert)
                .map_err(|e| self.rejected(format!("not a usable CA certificate: {e}")))?;
        }
        Ok(Arc::new(roots))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_with_its_option() {
        // (The server's files: tests/runtime_tls.rs.)
        let err = ClientTlsConfig::new("/nonexistent/ca.pem")
            .check()
            .unwrap_err();
        assert!(
            matches!(err, TlsConfigError::Read { field: "ca", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn pem_without_a_certificate_or_key_is_refused() {
        // (PEM files of the wrong kind: tests/runtime_tls.rs.)
        let text = b"just text, no PEM";
        let err = ClientTls::from_pem(text, None, None).unwrap_err();
        assert!(
            matches!(err, TlsConfigError::NoCertificate { field: "ca", .. }),
            "{err}"
        );
        let err = Pem::memory("private_key", text).private_key().unwrap_err();
        assert!(matches!(err, TlsConfigError::NoPrivateKey { .. }), "{err}");
    }

    #[test]
    fn half_a_client_identity_is_refused() {
        let err = ClientTlsConfig {
            client_cert: Some("c.pem".into()),
            ..ClientTlsConfig::new("/nonexistent/ca.pem")
        }
        .check()
        .unwrap_err();
        assert!(
            matches!(
                err,
                TlsConfigError::Incomplete {
                    field: "client_cert",
                    missing: "client_key"
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn alerts_about_certificates_blame_this_side() {
        use rustls::Error;
        assert_eq!(
            TlsFailure::of(&Error::AlertReceived(AlertDescription::CertificateRequired)),
            TlsFailure::CertificateRefusedByPeer
        );
        assert_eq!(
            TlsFailure::of(&Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )),
            TlsFailure::PeerCertificateRejected
        );
        assert_eq!(
            TlsFailure::of(&Error::AlertReceived(AlertDescription::HandshakeFailure)),
            TlsFailure::Protocol
        );
    }
}
