//! A minimal HTTPS/1.1 client for the benchmarks: one keep-alive connection per client, trusting the server's CA.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connection settings shared by all clients of one server.
#[derive(Clone)]
pub struct Target {
    addr: String,
    token: String,
    tls: tokio_rustls::TlsConnector,
}

impl Target {
    /// Read the CA and admin token from a server's data dir.
    pub fn from_data_dir(dir: &Path, addr: &str) -> Result<Self> {
        let ca = std::fs::read(dir.join("tls/ca.crt")).context("reading the server CA")?;
        let token = std::fs::read_to_string(dir.join("admin-token")).context("reading the admin token")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(cert.context("parsing the CA")?).context("adding the CA")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            addr: addr.to_string(),
            token: token.trim().to_string(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// Open a connection.
    pub async fn connect(&self) -> Result<Client> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = self.tls.connect(name, tcp).await.context("tls handshake")?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            sender,
            token: self.token.clone(),
        })
    }
}

/// One HTTP/1.1 connection.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    token: String,
}

impl Client {
    fn build(&self, method: &str, path: &str, body: Option<Vec<u8>>, ct: &str) -> Result<http::Request<Full<Bytes>>> {
        Ok(http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", ct)
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?)
    }

    /// Send a request and read the whole response; non-2xx is an error with the body.
    pub async fn call(&mut self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
        self.send(method, path, body, "application/json").await
    }

    /// PATCH with a JSON merge patch.
    pub async fn call_patch(&mut self, path: &str, body: Vec<u8>) -> Result<Bytes> {
        self.send("PATCH", path, Some(body), "application/merge-patch+json")
            .await
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<Vec<u8>>, ct: &str) -> Result<Bytes> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(self.build(method, path, body, ct)?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }

    /// Start a streaming request (a watch); returns the body to read frames from.
    pub async fn stream(mut self, path: &str) -> Result<hyper::body::Incoming> {
        self.sender.ready().await?;
        let resp = self
            .sender
            .send_request(self.build("GET", path, None, "application/json")?)
            .await?;
        if !resp.status().is_success() {
            bail!("GET {path}: {}", resp.status());
        }
        Ok(resp.into_body())
    }
}

/// Reads a watch stream's newline-delimited JSON events one at a time.
pub struct EventReader {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl EventReader {
    pub fn new(body: hyper::body::Incoming) -> Self {
        Self { body, buf: Vec::new() }
    }

    /// The next event, or None when the stream ends or fails. Lines that are not JSON are skipped.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if let Ok(ev) = serde_json::from_slice(&line) {
                    return Some(ev);
                }
            }
            let frame = self.body.frame().await?.ok()?;
            if let Some(data) = frame.data_ref() {
                self.buf.extend_from_slice(data);
            }
        }
    }
}
