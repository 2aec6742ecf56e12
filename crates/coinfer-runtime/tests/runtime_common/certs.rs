//! Test-time certificates (rcgen): a CA, a server certificate for `localhost` and 127.0.0.1,
//! a client certificate signed by the CA, and a second, unrelated CA with a client
//! certificate of its own. Written as PEM files into a fresh temporary folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files of a small PKI.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA that signs the server and the good client.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An unrelated CA and a client certificate it signed.
    pub other_ca: PathBuf,
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("a self-signed CA");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(names: &[&str], issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().expect("a leaf key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "coinfer test");
    let cert = params.signed_by(&key, issuer).expect("a signed leaf");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a PEM file");
    path
}

/// Generates the PKI into a fresh folder named after `tag` (tests run concurrently).
pub fn pki(tag: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("coinfer-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let (ca_pem, issuer) = ca("coinfer test CA");
    let (server_cert, server_key) = leaf(&["localhost", "127.0.0.1"], &issuer);
    let (client_cert, client_key) = leaf(&["device-1"], &issuer);
    let (other_ca_pem, other_issuer) = ca("unrelated CA");
    let (other_cert, other_key) = leaf(&["device-x"], &other_issuer);
    Pki {
        ca: write(&dir, "ca.pem", &ca_pem),
        server_cert: write(&dir, "server.pem", &server_cert),
        server_key: write(&dir, "server.key", &server_key),
        client_cert: write(&dir, "client.pem", &client_cert),
        client_key: write(&dir, "client.key", &client_key),
        other_ca: write(&dir, "other-ca.pem", &other_ca_pem),
        other_client_cert: write(&dir, "other-client.pem", &other_cert),
        other_client_key: write(&dir, "other-client.key", &other_key),
        dir,
    }
}
