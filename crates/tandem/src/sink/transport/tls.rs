//! sink::transport::tls: TLS to a destination: the files that customise it ([`TlsFiles`]:
//! a private CA added to the webpki roots, a client certificate and key for mTLS, as
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` / `_CLIENT_CERTIFICATE` / `_CLIENT_KEY` name them),
//! their check at start, and the rustls client configuration, built at the first `https`
//! connection that needs it (never at start: init pays nothing for TLS) and then kept
//! for every later connection with the same files. Only with the `tls` feature.

use std::path::PathBuf;

/// PEM files customising TLS to one destination; all `None` is the webpki roots alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// Certificates (PEM) trusted besides the webpki roots: a private CA.
    pub ca: Option<PathBuf>,
    /// The client's certificate chain (PEM), presented when the server asks (mTLS).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

/// Which of the [`TlsFiles`] a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// [`TlsFiles::ca`].
    Ca,
    /// [`TlsFiles::client_cert`].
    ClientCert,
    /// [`TlsFiles::client_key`].
    ClientKey,
}

impl TlsFiles {
    /// Whether nothing is customised.
    pub fn is_default(&self) -> bool {
        *self == TlsFiles::default()
    }

    /// Reads and parses every file named, as the first connection will: the problems
    /// found, each with the file it is about (for the start and `check-config`, so that
    /// a typo in a path is said at once, not at the first export).
    pub fn check(&self) -> Vec<(TlsFile, String)> {
        let mut problems = Vec::new();
        if let Some(p) = &self.ca {
            if let Err(e) = pem::certificates(p) {
                problems.push((TlsFile::Ca, e));
            }
        }
        match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => {
                if let Err(e) = pem::certificates(c) {
                    problems.push((TlsFile::ClientCert, e));
                }
                if let Err(e) = pem::private_key(k) {
                    problems.push((TlsFile::ClientKey, e));
                }
            }
            (Some(_), None) => problems.push((TlsFile::ClientCert, "is set without a client key".into())),
            (None, Some(_)) => problems.push((TlsFile::ClientKey, "is set without a client certificate".into())),
            (None, None) => {}
        }
        problems
    }
}

#[cfg(feature = "tls")]
mod pem {
    use std::path::Path;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// Every certificate in a PEM file; at least one.
    pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
        let bytes = read(path)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not a PEM certificate file ({e})", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: holds no PEM certificate", path.display()));
        }
        Ok(certs)
    }

    /// The first private key of a PEM file.
    pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
        let bytes = read(path)?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| format!("{}: holds no PEM private key ({e})", path.display()))
    }

    /// A certificate or key file is a few KiB; the bound keeps a wrong path cheap.
    const MAX_PEM_BYTES: u64 = 1024 * 1024;

    fn read(path: &Path) -> Result<Vec<u8>, String> {
        use std::io::Read as _;
        let cannot = |e: std::io::Error| format!("{}: cannot read: {e}", path.display());
        // Checked before opening: opening a FIFO blocks until a writer comes.
        if !std::fs::metadata(path).map_err(cannot)?.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        let file = std::fs::File::open(path).map_err(cannot)?;
        let mut bytes = Vec::new();
        file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
        if bytes.len() as u64 > MAX_PEM_BYTES {
            return Err(format!("{}: larger than 1MiB, not a PEM file", path.display()));
        }
        Ok(bytes)
    }
}

#[cfg(not(feature = "tls"))]
mod pem {
    use std::path::Path;

    const NO_TLS: &str = "is set, but this build of tandem has no TLS support (feature `tls`)";

    pub fn certificates(_path: &Path) -> Result<(), String> {
        Err(NO_TLS.into())
    }

    pub fn private_key(_path: &Path) -> Result<(), String> {
        Err(NO_TLS.into())
    }
}

#[cfg(feature = "tls")]
pub(crate) use with_tls::connect;

#[cfg(feature = "tls")]
mod with_tls {
    use super::{pem, TlsFiles};
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::TlsConnector;

    type Built = (TlsFiles, &'static [u8], Arc<ClientConfig>);

    /// Configurations built so far, by files and ALPN protocol: a handful at most (one
    /// per distinct set of files a sink names).
    static BUILT: Mutex<Vec<Built>> = Mutex::new(Vec::new());

    /// The configuration for `files` offering `alpn`, built at its first use: the roots
    /// are compiled in (no certificate directory scan), the provider is ring. A file
    /// that cannot be read fails this connection (and is read again at the next).
    fn config(files: &TlsFiles, alpn: &'static [u8]) -> Result<Arc<ClientConfig>, String> {
        let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, _, c)) = built.iter().find(|(f, a, _)| f == files && *a == alpn) {
            return Ok(c.clone());
        }
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(ca) = &files.ca {
            for cert in pem::certificates(ca)? {
                roots.add(cert).map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
            }
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots);
        let mut cfg = match (&files.client_cert, &files.client_key) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(pem::certificates(cert)?, pem::private_key(key)?).map_err(|e| {
                    format!("{} and {} are not a usable client certificate: {e}", cert.display(), key.display())
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![alpn.to_vec()];
        let cfg = Arc::new(cfg);
        built.push((files.clone(), alpn, cfg.clone()));
        Ok(cfg)
    }

    /// TLS over `tcp` to `host`, verified against the webpki roots and `files`' CA,
    /// presenting `files`' client certificate when the server asks, offering `alpn`.
    pub async fn connect(
        host: &str,
        tcp: TcpStream,
        files: &TlsFiles,
        alpn: &'static [u8],
    ) -> Result<TlsStream<TcpStream>, String> {
        let name =
            ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
        TlsConnector::from(config(files, alpn)?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host} failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_and_unpaired_files_are_reported_by_file() {
        let missing = TlsFiles { ca: Some("/nonexistent/ca.pem".into()), ..TlsFiles::default() };
        let problems = missing.check();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, TlsFile::Ca);
        let lone = TlsFiles { client_cert: Some("/nonexistent/c.pem".into()), ..TlsFiles::default() };
        assert_eq!(lone.check(), vec![(TlsFile::ClientCert, "is set without a client key".to_owned())]);
        assert!(TlsFiles::default().check().is_empty() && TlsFiles::default().is_default());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_file_without_pem_content_is_reported() {
        let dir = std::env::temp_dir().join(format!("tandem-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let files = TlsFiles { ca: Some(junk.clone()), client_cert: Some(junk.clone()), client_key: Some(junk) };
        let problems = files.check();
        assert_eq!(
            problems.iter().map(|p| p.0).collect::<Vec<_>>(),
            [TlsFile::Ca, TlsFile::ClientCert, TlsFile::ClientKey]
        );
        assert!(problems[0].1.contains("holds no PEM certificate"), "{problems:?}");
        assert!(problems[2].1.contains("holds no PEM private key"), "{problems:?}");
        let dirs = TlsFiles { ca: Some(dir.clone()), ..TlsFiles::default() }.check();
        assert!(dirs[0].1.contains("not a regular file") || dirs[0].1.contains("cannot read"), "{dirs:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
