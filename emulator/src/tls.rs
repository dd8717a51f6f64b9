//! Optional TLS: a fresh certificate authority and serving certificate per emulator, so
//! clients that insist on https (kubectl sends bearer tokens only over https) can connect.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::Error;

/// What a TLS-serving emulator needs: the server configuration and the CA to trust.
pub struct Material {
    /// The CA certificate (PEM) for the kubeconfig's `certificate-authority-data`.
    pub ca_pem: String,
    /// The rustls server configuration with the serving certificate.
    pub config: Arc<rustls::ServerConfig>,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Start(format!("TLS setup: {e}"))
}

/// A self-signed CA certificate (PEM) only, for the `kube-root-ca.crt` ConfigMaps of an
/// emulator that serves plain http: nothing verifies against it, so one per process does
/// (key generation is the slowest part of starting an emulator in a debug build).
pub fn ca_pem() -> Result<String, Error> {
    static CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(pem) = CA.get() {
        return Ok(pem.clone());
    }
    let pem = fresh_ca_pem()?;
    Ok(CA.get_or_init(|| pem).clone())
}

fn fresh_ca_pem() -> Result<String, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-emulator-ca");
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(err)?).map_err(err)?;
    Ok(ca.pem())
}

/// Generates a CA and a serving certificate for `127.0.0.1` and `localhost`.
pub fn generate() -> Result<Material, Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kube-emulator-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?).map_err(err)?;
    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "kube-emulator");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = leaf.signed_by(&leaf_key, &ca).map_err(err)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca.der().clone()], key)
        .map_err(err)?;
    // Only HTTP/1.1 is served; say so, so HTTP/2-preferring clients fall back.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Material {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    })
}
