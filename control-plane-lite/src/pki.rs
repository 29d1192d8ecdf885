//! Credentials kept in the data dir: a CA, the API server's serving certificate, the admin token, the node token
//! and the admin kubeconfig. Generated on first start, reused afterwards.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::Rng;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

/// Errors preparing credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file in the data dir failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls setup: {0}")]
    /// rustls refused the configuration.
    Tls(String),
    /// A PEM file in the data dir is unreadable.
    #[error("{0}: invalid PEM; delete the data dir's tls/ folder to regenerate the certificates")]
    Pem(PathBuf),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Loaded credentials.
pub struct Credentials {
    /// PEM of the CA certificate (clients trust this).
    pub ca_pem: String,
    /// PEM of the serving certificate.
    pub server_cert_pem: String,
    /// PEM of the serving key.
    pub server_key_pem: String,
    /// Bearer token with full access (written into the kubeconfig).
    pub admin_token: String,
    /// Token nodes present to join.
    pub node_token: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write a file with mode 0600, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_or_create(path: &Path, make: impl FnOnce() -> Result<String>) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let v = make()?;
            write_private(path, v.as_bytes())?;
            Ok(v)
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Load the credentials in `data_dir`, generating what is missing. `extra_sans` are added to the serving
/// certificate when it is first generated (the listen address and node IPs).
pub fn ensure(data_dir: &Path, extra_sans: &[IpAddr]) -> Result<Credentials> {
    let tls = data_dir.join("tls");
    fs::create_dir_all(&tls).map_err(io(&tls))?;
    let (ca_crt, server_crt, server_key) = (tls.join("ca.crt"), tls.join("server.crt"), tls.join("server.key"));
    if !(ca_crt.exists() && server_crt.exists() && server_key.exists()) {
        generate(&tls, extra_sans)?;
    }
    let read = |p: &Path| fs::read_to_string(p).map_err(io(p));
    let creds = Credentials {
        ca_pem: read(&ca_crt)?,
        server_cert_pem: read(&server_crt)?,
        server_key_pem: read(&server_key)?,
        admin_token: read_or_create(&data_dir.join("admin-token"), || Ok(random_token()))?,
        node_token: read_or_create(&data_dir.join("node-token"), || Ok(format!("K10{}", random_token())))?,
    };
    Ok(creds)
}

fn generate(tls: &Path, extra_sans: &[IpAddr]) -> Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "keel-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let mut names: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "127.0.0.1",
        "::1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(host) = fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    let mut server = CertificateParams::new(names)?;
    for ip in extra_sans {
        if !ip.is_unspecified() {
            server.subject_alt_names.push(SanType::IpAddress(*ip));
        }
    }
    server.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    write_private(&tls.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    write_private(&tls.join("server.key"), server_key.serialize_pem().as_bytes())?;
    write_private(&tls.join("server.crt"), server_cert.pem().as_bytes())?;
    // Written last: its presence marks a complete set.
    write_private(&tls.join("ca.crt"), ca_cert.pem().as_bytes())?;
    Ok(())
}

/// The admin kubeconfig for a server reachable at `server_url`.
pub fn kubeconfig(server_url: &str, creds: &Credentials) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(creds.ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server_url}
  name: keel
contexts:
- context:
    cluster: keel
    user: admin
  name: keel
current-context: keel
preferences: {{}}
users:
- name: admin
  user:
    token: {token}
",
        token = creds.admin_token
    )
}

/// A rustls server config serving `creds`.
pub fn server_tls_config(creds: &Credentials) -> Result<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut creds.server_cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::Pem(PathBuf::from("tls/server.crt")))?;
    let key = rustls_pemfile::private_key(&mut creds.server_key_pem.as_bytes())
        .ok()
        .flatten()
        .ok_or_else(|| Error::Pem(PathBuf::from("tls/server.key")))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ensure(dir.path(), &["10.0.0.1".parse().expect("ip")]).expect("first");
        let b = ensure(dir.path(), &[]).expect("second");
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert!(b.node_token.starts_with("K10"));
        server_tls_config(&b).expect("tls config builds");
        let kc = kubeconfig("https://127.0.0.1:6443", &b);
        assert!(kc.contains(&b.admin_token));
        let mode = fs::metadata(dir.path().join("admin-token"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
