//! TLS: the per-user interception CA, per-host leaf certificates, and the
//! client configuration used to verify upstream servers.
//!
//! Owns: `ca_dir` layout (`ca.json`, 0600: key + cert + expiry; `ca.pem`,
//! 0644: cert only, for people who want to look at or trust it), CA
//! generation (ECDSA P-256, 365 days, path length 0, regenerated when it
//! has less than 7 days left or cannot be read), the in-memory leaf cache,
//! ALPN (h2 + http/1.1 to clients), and the root store for upstreams
//! (webpki-roots + the system bundle + `--ca-cert` files).
//!
//! Every rustls config is built with the aws-lc-rs provider passed
//! explicitly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::host::Host;
use super::ProxyError;

/// Where Debian-family systems keep the system bundle.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CA_VALID_DAYS: i64 = 365;
const CA_RENEW_BEFORE_DAYS: i64 = 7;
const CA_FILE: &str = "ca.json";
const CA_PEM: &str = "ca.pem";
const CA_LOCK: &str = "ca.lock";
/// Largest CA file read (a P-256 key and certificate are ~1 KiB).
const CA_FILE_CAP: u64 = 64 * 1024;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[derive(Serialize, Deserialize)]
struct StoredCa {
    key_pem: String,
    cert_pem: String,
    /// Unix seconds.
    not_after: i64,
}

impl Drop for StoredCa {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key_pem.zeroize();
    }
}

fn tls_err(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Tls(e.to_string())
}

fn ca_params(not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "zerobox interception CA");
    dn.push(DnType::OrganizationName, "zerobox (local, per-user)");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = not_before;
    p.not_after = not_after;
    p
}

/// The CA: an issuer for leaves plus its certificate PEM.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
}

impl Ca {
    /// Load the CA from `dir`, creating or renewing it as needed.
    ///
    /// Runs hold an exclusive `flock` on `ca.lock` for the whole
    /// load-or-create: ten first runs at once each made a key, and `ca.pem`
    /// ended up from one while `ca.json` came from another. Under the lock
    /// a run re-reads what an earlier holder wrote and uses it. Every file
    /// is opened `O_NOFOLLOW`, must be a regular file, and the stored pair
    /// is verified (the key is the certificate's, `ca.pem` is that
    /// certificate); a mismatch is an error naming the fix, never papered
    /// over.
    pub fn load_or_create(dir: &Path) -> Result<Ca, ProxyError> {
        create_private_dir(dir)?;
        let lock = open_private(&dir.join(CA_LOCK), true)?;
        lock.lock().map_err(|e| {
            ProxyError::Tls(format!("cannot lock {}: {e}", dir.join(CA_LOCK).display()))
        })?;
        let path = dir.join(CA_FILE);
        let pem_path = dir.join(CA_PEM);
        let now = OffsetDateTime::now_utc();
        if let Some(text) = read_private(&path)? {
            if let Ok(stored) = serde_json::from_str::<StoredCa>(&text) {
                let renew_at = now + Duration::days(CA_RENEW_BEFORE_DAYS);
                if stored.not_after > renew_at.unix_timestamp() {
                    let ca = Ca::from_stored(&stored).map_err(|e| mismatch(dir, &e.to_string()))?;
                    if !key_matches_cert(&stored)? {
                        return Err(mismatch(
                            dir,
                            "the key in ca.json is not the certificate's key",
                        ));
                    }
                    match read_private(&pem_path)? {
                        Some(pem) if *pem == stored.cert_pem => {}
                        Some(_) => {
                            return Err(mismatch(dir, "ca.pem is not the certificate in ca.json"))
                        }
                        None => write_atomic(&pem_path, stored.cert_pem.as_bytes(), 0o644)?,
                    }
                    return Ok(ca);
                }
            }
        }
        // Create (or replace an expired / unparseable one), still locked.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
        let not_before = now - Duration::hours(1);
        let not_after = now + Duration::days(CA_VALID_DAYS);
        let params = ca_params(not_before, not_after);
        let cert = params.self_signed(&key).map_err(tls_err)?;
        let stored = StoredCa {
            key_pem: key.serialize_pem(),
            cert_pem: cert.pem(),
            not_after: not_after.unix_timestamp(),
        };
        let json = Zeroizing::new(serde_json::to_string(&stored).map_err(tls_err)?);
        write_atomic(&path, json.as_bytes(), 0o600)?;
        write_atomic(&pem_path, stored.cert_pem.as_bytes(), 0o644)?;
        drop(lock);
        Ca::from_stored(&stored)
    }

    fn from_stored(stored: &StoredCa) -> Result<Ca, ProxyError> {
        let key = KeyPair::from_pem(&stored.key_pem).map_err(tls_err)?;
        let cert_der = CertificateDer::from_pem_slice(stored.cert_pem.as_bytes())
            .map_err(tls_err)?
            .into_owned();
        // Rebuild the issuer from the same subject and key: leaves name it
        // as issuer and carry its key identifier.
        let nb = OffsetDateTime::from_unix_timestamp(stored.not_after).map_err(tls_err)?;
        let params = ca_params(nb - Duration::days(CA_VALID_DAYS), nb);
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem: stored.cert_pem.clone(),
            cert_der,
        })
    }

    /// Issue a leaf for `host`, valid 30 days (never past the CA).
    fn leaf(
        &self,
        host: &Host,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ProxyError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.bare());
        p.distinguished_name = dn;
        p.subject_alt_names = vec![match host {
            Host::Ip(a) => SanType::IpAddress(*a),
            Host::Name(n) => SanType::DnsName(n.clone().try_into().map_err(tls_err)?),
        }];
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::hours(1);
        p.not_after = now + Duration::days(30);
        let cert = p.signed_by(&key, &self.issuer).map_err(tls_err)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key_der))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ProxyError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ProxyError::Tls(format!("cannot create {}: {e}", dir.display())))?;
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| ProxyError::Tls(format!("cannot stat {}: {e}", dir.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ProxyError::Tls(format!("cannot chmod {}: {e}", dir.display())))?;
    }
    Ok(())
}

fn mismatch(dir: &Path, why: &str) -> ProxyError {
    ProxyError::Tls(format!(
        "the interception CA in {} is inconsistent ({why}); delete that directory and the next run makes a new CA (nothing outside zerobox sandboxes trusts it)",
        dir.display()
    ))
}

/// Does the stored key belong to the stored certificate? The certificate's
/// SubjectPublicKeyInfo carries the key's public point verbatim, so the
/// point's bytes must occur in the certificate.
fn key_matches_cert(stored: &StoredCa) -> Result<bool, ProxyError> {
    let key = KeyPair::from_pem(&stored.key_pem).map_err(tls_err)?;
    let der = CertificateDer::from_pem_slice(stored.cert_pem.as_bytes()).map_err(tls_err)?;
    let point = key.public_key_raw();
    Ok(!point.is_empty() && der.windows(point.len()).any(|w| w == point))
}

/// Open a file of the CA directory: never through a symlink, regular
/// files only; `create` for the lock file.
fn open_private(path: &Path, create: bool) -> Result<std::fs::File, ProxyError> {
    crate::private_file::open_nofollow(path, create).map_err(|e| match e {
        crate::private_file::OpenError::Io(e) => {
            ProxyError::Tls(format!("cannot open {}: {e}", path.display()))
        }
        crate::private_file::OpenError::NotRegular => ProxyError::Tls(format!(
            "{} is not a regular file: delete it",
            path.display()
        )),
    })
}

/// Read a CA file; `None` if it does not exist.
fn read_private(path: &Path) -> Result<Option<Zeroizing<String>>, ProxyError> {
    use std::io::Read;
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let f = open_private(path, false)?;
    let mut text = Zeroizing::new(String::new());
    f.take(CA_FILE_CAP)
        .read_to_string(&mut text)
        .map_err(|e| ProxyError::Tls(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(text))
}

/// Write via a temporary file and rename (see `crate::private_file`).
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), ProxyError> {
    crate::private_file::write_atomic(path, data, mode, crate::private_file::Durability::Synced)
        .map_err(|e| ProxyError::Tls(format!("cannot write {}: {e}", path.display())))
}

/// Upstream client configs: h2 + http/1.1, and http/1.1 only.
struct ClientConfigs {
    any: Arc<ClientConfig>,
    h1: Arc<ClientConfig>,
}

/// Everything TLS the running proxy needs.
///
/// A run that only tunnels (no secret, so nothing is ever intercepted)
/// builds none of it: the CA is loaded at start only when a secret is
/// configured (so a broken CA still fails that start), and the upstream
/// root store on the first intercepted request.
pub struct TlsState {
    ca_dir: PathBuf,
    ca: OnceLock<Ca>,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
    /// `--ca-cert` roots, checked at start.
    extra_roots: Vec<CertificateDer<'static>>,
    /// Upstream client configs, built on first use (see [`TlsState::clients`]).
    clients: OnceLock<ClientConfigs>,
    /// Held (written) by the warm-up while it runs: an intercepted
    /// request that comes meanwhile waits for it (reads) rather than
    /// doing the same work a second time on the same two cores.
    pub warming: Arc<tokio::sync::RwLock<()>>,
    /// The system CA bundle as read at start (empty if unreadable); the
    /// bundle handed to the sandbox is this plus the zerobox CA.
    /// (`--ca-cert` roots are for zerobox's own upstream checks only.)
    pub system_bundle_pem: String,
}

impl TlsState {
    /// `intercepts`: some secret is configured, so interception may
    /// happen: load (or create) the CA now.
    pub fn new(
        ca_dir: &Path,
        extra_ca_certs: &[PathBuf],
        intercepts: bool,
    ) -> Result<TlsState, ProxyError> {
        let ca = OnceLock::new();
        if intercepts {
            let _ = ca.set(Ca::load_or_create(ca_dir)?);
        }
        let system_bundle_pem = std::fs::read_to_string(SYSTEM_BUNDLE).unwrap_or_default();
        // `--ca-cert` files are read and checked now, so a bad one fails the
        // start as before; the root store itself is built on first use.
        let mut extra_roots = Vec::new();
        for path in extra_ca_certs {
            let data = std::fs::read(path)
                .map_err(|e| ProxyError::Tls(format!("--ca-cert {}: {e}", path.display())))?;
            let mut n = 0;
            for c in CertificateDer::pem_slice_iter(&data) {
                let c =
                    c.map_err(|e| ProxyError::Tls(format!("--ca-cert {}: {e}", path.display())))?;
                RootCertStore::empty()
                    .add(c.clone())
                    .map_err(|e| ProxyError::Tls(format!("--ca-cert {}: {e}", path.display())))?;
                extra_roots.push(c);
                n += 1;
            }
            if n == 0 {
                return Err(ProxyError::Tls(format!(
                    "--ca-cert {}: no PEM certificate found",
                    path.display()
                )));
            }
        }
        Ok(TlsState {
            ca_dir: ca_dir.to_path_buf(),
            ca,
            leaves: Mutex::new(HashMap::new()),
            extra_roots,
            clients: OnceLock::new(),
            warming: Arc::new(tokio::sync::RwLock::new(())),
            system_bundle_pem,
        })
    }

    /// The upstream client configs, built on the first intercepted request:
    /// a run that only tunnels never parses the root store (the bundled
    /// roots and the system bundle cost ≈ 1.4 ms at start otherwise).
    fn clients(&self) -> Result<&ClientConfigs, ProxyError> {
        if let Some(c) = self.clients.get() {
            return Ok(c);
        }
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for c in CertificateDer::pem_slice_iter(self.system_bundle_pem.as_bytes()).flatten() {
            let _ = roots.add(c);
        }
        for c in &self.extra_roots {
            roots.add(c.clone()).map_err(tls_err)?;
        }
        let roots = Arc::new(roots);
        let mk = |alpn: &[&[u8]]| -> Result<Arc<ClientConfig>, ProxyError> {
            let mut c = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(tls_err)?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
            Ok(Arc::new(c))
        };
        let built = ClientConfigs {
            any: mk(&[b"h2", b"http/1.1"])?,
            h1: mk(&[b"http/1.1"])?,
        };
        // Two first requests at once may both build; either result is the
        // same, and the first stored wins.
        Ok(self.clients.get_or_init(|| built))
    }

    /// The CA, loading (or creating) it on first use when the start did
    /// not (a tunnel-only run asked for it: tests, `ca_cert_pem`).
    pub fn ca(&self) -> Result<&Ca, ProxyError> {
        if let Some(c) = self.ca.get() {
            return Ok(c);
        }
        // Two first uses at once both load; the file lock makes them read
        // the same CA, and the first stored wins.
        let ca = Ca::load_or_create(&self.ca_dir)?;
        Ok(self.ca.get_or_init(|| ca))
    }

    /// Server config presenting a leaf for `host` (cached per host).
    pub fn server_config(&self, host: &Host) -> Result<Arc<ServerConfig>, ProxyError> {
        let key = host.bare();
        if let Some(c) = self
            .leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let (chain, key_der) = self.ca()?.leaf(host)?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(tls_err)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        self.leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, cfg.clone());
        Ok(cfg)
    }

    /// Do off the request path, while the sandboxed command starts, what
    /// the first intercepted request would otherwise wait for: seed
    /// AWS-LC's RNG (25–120 ms with its CPU-jitter collector, which this
    /// repository's builds leave out, see `.cargo/config.toml`; from the
    /// kernel alone, a small part of a 2 ms first request), issue the
    /// leaves of the hosts secrets are bound to by exact name or address
    /// (wildcards are issued on demand), build the upstream root store,
    /// and rehearse one handshake (see [`rehearse`]). Errors are left for
    /// the request to meet and report.
    pub fn warm_up(&self, hosts: &[Host]) {
        let mut first = None;
        for h in hosts {
            let cfg = self.server_config(h);
            if first.is_none() {
                first = cfg.ok().map(|c| (c, h.clone()));
            }
        }
        let _ = self.clients();
        // A run with secrets loaded the CA at start; without, nothing
        // here makes one.
        let Some(ca) = self.ca.get() else { return };
        // No exact host: a throwaway leaf, not cached (issuing it seeds
        // the RNG all the same).
        let stand_in = || {
            let h = Host::parse(REHEARSAL_HOST).ok()?;
            let (chain, key) = ca.leaf(&h).ok()?;
            let cfg = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .ok()?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .ok()?;
            Some((Arc::new(cfg), h))
        };
        if let Some((cfg, host)) = first.or_else(stand_in) {
            let _ = rehearse(cfg, &ca.cert_der, &host);
        }
    }

    /// Whether a leaf for `host` is cached (tests).
    #[cfg(test)]
    pub fn has_leaf(&self, host: &Host) -> bool {
        self.leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&host.bare())
    }

    pub fn client_config(&self, h1_only: bool) -> Result<Arc<ClientConfig>, ProxyError> {
        let c = self.clients()?;
        Ok(if h1_only { c.h1.clone() } else { c.any.clone() })
    }

    /// System roots plus the zerobox CA, for `SSL_CERT_FILE` inside. A
    /// tunnel-only run has no CA loaded: the system roots alone (nothing
    /// inside ever meets a zerobox certificate then).
    pub fn bundle_pem(&self) -> String {
        let mut s = self.system_bundle_pem.clone();
        let Some(ca) = self.ca.get() else {
            return s;
        };
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str("# zerobox interception CA\n");
        s.push_str(&ca.cert_pem);
        s
    }
}

/// The name of the stand-in leaf a rehearsal uses when no secret is bound
/// to an exact host (`.invalid`: never a real one).
const REHEARSAL_HOST: &str = "rehearsal.zerobox.invalid";

/// One TLS handshake and a record each way between a client and a server
/// in memory (no socket, nothing leaves the process): the server with
/// `server` (a leaf of ours), the client trusting our CA alone. It runs,
/// at start, the code and the one-time set-up (page faults on the code,
/// AWS-LC's lazily built tables, first allocations) the first intercepted
/// request would otherwise pay on both of its legs: a server handshake
/// with an ECDSA signature, and a client one verifying a chain (the same
/// verifier code the upstream leg uses), key exchange, AES-GCM.
fn rehearse(
    server: Arc<ServerConfig>,
    ca: &CertificateDer<'static>,
    host: &Host,
) -> Result<(), rustls::Error> {
    use std::io::{Read, Write};
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match host {
        Host::Name(n) => rustls_pki_types::ServerName::try_from(n.clone())
            .map_err(|_| rustls::Error::General("rehearsal: bad name".into()))?,
        Host::Ip(a) => rustls_pki_types::ServerName::IpAddress((*a).into()),
    };
    let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
    let mut s = rustls::ServerConnection::new(server)?;
    let io = |e: std::io::Error| rustls::Error::General(format!("rehearsal: {e}"));
    c.writer().write_all(b"ping").map_err(io)?;
    s.writer().write_all(b"pong").map_err(io)?;
    let mut wire = Vec::new();
    let mut got = [0u8; 4];
    // A TLS 1.3 handshake is 1.5 round trips; the data follows in the next.
    for _ in 0..4 {
        wire.clear();
        c.write_tls(&mut wire).map_err(io)?;
        s.read_tls(&mut &wire[..]).map_err(io)?;
        s.process_new_packets()?;
        wire.clear();
        s.write_tls(&mut wire).map_err(io)?;
        c.read_tls(&mut &wire[..]).map_err(io)?;
        c.process_new_packets()?;
        if !c.is_handshaking() && c.reader().read_exact(&mut got).is_ok() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("rehearsal: no answer".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ca");
        let a = Ca::load_or_create(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let kmode = std::fs::metadata(dir.join(CA_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(kmode, 0o600);
        let b = Ca::load_or_create(&dir).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem, "CA reused across runs");
        // Expired: regenerated.
        let mut stored: StoredCa =
            serde_json::from_str(&std::fs::read_to_string(dir.join(CA_FILE)).unwrap()).unwrap();
        stored.not_after = OffsetDateTime::now_utc().unix_timestamp() - 10;
        std::fs::write(dir.join(CA_FILE), serde_json::to_string(&stored).unwrap()).unwrap();
        let c = Ca::load_or_create(&dir).unwrap();
        assert_ne!(a.cert_pem, c.cert_pem);
        // Garbage: regenerated.
        std::fs::write(dir.join(CA_FILE), "junk").unwrap();
        assert!(Ca::load_or_create(&dir).is_ok());
    }

    fn assert_consistent(dir: &Path) {
        let stored: StoredCa =
            serde_json::from_str(&std::fs::read_to_string(dir.join(CA_FILE)).unwrap()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(CA_PEM)).unwrap(),
            stored.cert_pem
        );
        assert!(key_matches_cert(&stored).unwrap());
    }

    /// Hardening II #11: ten first runs at once end with one CA, and
    /// `ca.pem` is the certificate of the key in `ca.json`.
    #[test]
    fn concurrent_first_runs_make_one_consistent_ca() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ca");
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || Ca::load_or_create(&dir).map(|c| c.cert_pem))
            })
            .collect();
        let pems: Vec<String> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert!(
            pems.iter().all(|p| p == &pems[0]),
            "runs used different CAs"
        );
        assert_consistent(&dir);
        assert_eq!(std::fs::read_to_string(dir.join(CA_PEM)).unwrap(), pems[0]);
    }

    #[test]
    fn mismatched_or_linked_ca_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        Ca::load_or_create(&a).unwrap();
        Ca::load_or_create(&b).unwrap();
        // ca.pem from another CA.
        std::fs::copy(b.join(CA_PEM), a.join(CA_PEM)).unwrap();
        let e = Ca::load_or_create(&a).err().unwrap().to_string();
        assert!(
            e.contains("ca.pem is not the certificate") && e.contains("delete"),
            "{e}"
        );
        // Key of one, certificate of the other.
        let mut sa: StoredCa =
            serde_json::from_str(&std::fs::read_to_string(a.join(CA_FILE)).unwrap()).unwrap();
        let sb: StoredCa =
            serde_json::from_str(&std::fs::read_to_string(b.join(CA_FILE)).unwrap()).unwrap();
        sa.cert_pem = sb.cert_pem.clone();
        std::fs::write(a.join(CA_FILE), serde_json::to_string(&sa).unwrap()).unwrap();
        std::fs::write(a.join(CA_PEM), &sb.cert_pem).unwrap();
        let e = Ca::load_or_create(&a).err().unwrap().to_string();
        assert!(e.contains("not the certificate's key"), "{e}");
        // A missing ca.pem is rewritten from ca.json.
        std::fs::remove_file(b.join(CA_PEM)).unwrap();
        Ca::load_or_create(&b).unwrap();
        assert_consistent(&b);
        // A symlinked ca.json is never followed.
        let c = d.path().join("c");
        std::fs::create_dir(&c).unwrap();
        std::os::unix::fs::symlink(b.join(CA_FILE), c.join(CA_FILE)).unwrap();
        assert!(Ca::load_or_create(&c).is_err());
    }

    #[test]
    fn root_store_is_built_only_when_an_upstream_needs_it() {
        let d = tempfile::tempdir().unwrap();
        let st = TlsState::new(d.path(), &[], true).unwrap();
        assert!(st.clients.get().is_none(), "built at start");
        let _ = st.bundle_pem();
        assert!(st.clients.get().is_none(), "built for the bundle");
        let h1 = st.client_config(true).unwrap();
        assert!(Arc::ptr_eq(&h1, &st.client_config(true).unwrap()));
        assert!(st.clients.get().is_some());
    }

    #[test]
    fn warm_up_issues_exact_leaves_and_builds_the_root_store() {
        let d = tempfile::tempdir().unwrap();
        let st = TlsState::new(d.path(), &[], true).unwrap();
        let a = Host::parse("api.example").unwrap();
        st.warm_up(std::slice::from_ref(&a));
        assert!(st.has_leaf(&a));
        assert!(st.clients.get().is_some());
        // The request then takes the cached leaf.
        let cfg = st.server_config(&a).unwrap();
        assert!(Arc::ptr_eq(&cfg, &st.server_config(&a).unwrap()));
    }

    /// The rehearsal completes a handshake with a leaf for a name, for an
    /// address, and with the stand-in leaf (no exact host).
    #[test]
    fn rehearsal_completes_a_handshake() {
        let d = tempfile::tempdir().unwrap();
        let st = TlsState::new(d.path(), &[], true).unwrap();
        let ca = &st.ca().unwrap().cert_der;
        for h in ["api.example", "192.0.2.7", REHEARSAL_HOST] {
            let h = Host::parse(h).unwrap();
            rehearse(st.server_config(&h).unwrap(), ca, &h).unwrap();
        }
        // A leaf another CA signed is refused: the client really verifies.
        let other = TlsState::new(&d.path().join("other"), &[], true).unwrap();
        let h = Host::parse("api.example").unwrap();
        assert!(rehearse(other.server_config(&h).unwrap(), ca, &h).is_err());
        // The warm-up with no exact host caches no stand-in leaf.
        let fresh = TlsState::new(&d.path().join("fresh"), &[], true).unwrap();
        fresh.warm_up(&[]);
        assert!(!fresh.has_leaf(&Host::parse(REHEARSAL_HOST).unwrap()));
    }

    /// A run with no secret never intercepts: no CA is read or made, no
    /// root store is built, and the bundle is the system's alone.
    #[test]
    fn tunnel_only_builds_no_tls_state() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ca");
        let st = TlsState::new(&dir, &[], false).unwrap();
        assert!(!dir.exists(), "CA directory made");
        assert!(st.ca.get().is_none() && st.clients.get().is_none());
        assert!(!st.bundle_pem().contains("zerobox interception CA"));
        // Asked for anyway, the CA appears (and joins the bundle).
        let pem = st.ca().unwrap().cert_pem.clone();
        assert!(dir.join("ca.json").is_file());
        assert!(st.bundle_pem().contains(&pem));
    }

    #[test]
    fn bad_ca_cert_still_fails_at_start() {
        let d = tempfile::tempdir().unwrap();
        let bad = d.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let err = TlsState::new(&d.path().join("ca"), &[bad], true)
            .err()
            .unwrap();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn leaf_verifies_against_ca() {
        let d = tempfile::tempdir().unwrap();
        let st = TlsState::new(d.path(), &[], true).unwrap();
        let host = Host::parse("api.example.test").unwrap();
        let cfg = st.server_config(&host).unwrap();
        assert!(Arc::ptr_eq(&cfg, &st.server_config(&host).unwrap()));
        let (chain, _) = st.ca().unwrap().leaf(&host).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(st.ca().unwrap().cert_der.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let name = rustls_pki_types::ServerName::try_from("api.example.test").unwrap();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &name,
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
        let other = rustls_pki_types::ServerName::try_from("other.example.test").unwrap();
        assert!(verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &other,
                &[],
                rustls_pki_types::UnixTime::now()
            )
            .is_err());
        assert!(st.bundle_pem().contains(&st.ca().unwrap().cert_pem));
    }
}
