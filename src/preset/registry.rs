//! Preset sources and the registry protocol.
//!
//! Resolution order for a name: project pin → user cache (via the cached,
//! re-verified index) → remote registry → bundled. A registry is a static
//! tree (`index.yaml` + `.minisig`, `presets/NAME/VERSION.yaml` + `.minisig`)
//! served over HTTPS or from a `file://` directory. See docs/registry.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::schema::{parse_preset, Preset};
use super::sign::{self, KeyRing, VerifiedBytes};
use super::signer;
use super::{
    bundled, project, read_capped, sha256_hex, write_atomic, PresetEnv, PresetError,
    MAX_INDEX_BYTES, MAX_PRESET_BYTES, MAX_SIG_BYTES,
};

/// `$XDG_CONFIG_HOME/zerobox/config.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Registry base URL (`https://…/` or `file:///…/`).
    #[serde(default)]
    pub registry: Option<String>,
    /// Extra PEM root CA for the registry (also `ZEROBOX_REGISTRY_CA`).
    #[serde(default)]
    pub registry_ca: Option<String>,
}

pub fn read_config(env: &PresetEnv) -> Result<Config, PresetError> {
    let path = env.config_dir.join("config.yaml");
    if !super::present(&path)? {
        return Ok(Config::default());
    }
    let bytes = read_capped(&path, 64 * 1024)?;
    super::yaml::parse(&bytes, &path.display().to_string())
}

/// The registry URL: `ZEROBOX_REGISTRY`, else `registry:` in config.yaml,
/// else none (bundled presets only).
/// The value is checked before any lookup (see [`check_registry_url`]).
pub fn registry_url(env: &PresetEnv) -> Result<Option<String>, PresetError> {
    if let Some(v) = std::env::var_os("ZEROBOX_REGISTRY") {
        let v = v.to_string_lossy().trim().to_string();
        if v.is_empty() {
            return Ok(None);
        }
        return check_registry_url(&v, "ZEROBOX_REGISTRY").map(Some);
    }
    let origin = env.config_dir.join("config.yaml").display().to_string();
    read_config(env)?
        .registry
        .map(|v| check_registry_url(v.trim(), &origin))
        .transpose()
}

/// A registry URL is `https://HOST[:PORT][/PATH]` or `file:///ABSOLUTE/DIR`
/// and nothing else: no other scheme, no empty host or bad port, no
/// credentials (they would travel in every request and every message), no
/// query or fragment, no whitespace. Refused (exit 2) naming the value and
/// where it came from, before anything is looked up.
pub fn check_registry_url(v: &str, origin: &str) -> Result<String, PresetError> {
    let bad = |why: &str| {
        PresetError::Usage(format!(
            "invalid registry URL {v:?} (from {origin}): {why}; expected https://HOST[:PORT]/PATH or file:///DIR"
        ))
    };
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace or control characters"));
    }
    let is_https = v.starts_with("https://");
    let is_file = v.starts_with("file://");
    if !is_https && !is_file {
        return Err(bad(if v.starts_with("http://") {
            "plain http is refused"
        } else {
            "only https:// and file:// registries are supported"
        }));
    }
    let url = reqwest::Url::parse(v).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL are refused"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    if is_https {
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.port() == Some(0) {
            return Err(bad("port 0"));
        }
    } else {
        if url.host_str().is_some_and(|h| !h.is_empty()) {
            return Err(bad(
                "a file registry names a local directory, not a host (file:///DIR)",
            ));
        }
        if !v["file://".len()..].starts_with('/') {
            return Err(bad("a file registry needs an absolute path"));
        }
    }
    Ok(v.to_string())
}

fn extra_ca(env: &PresetEnv) -> Result<Option<PathBuf>, PresetError> {
    if let Some(v) = std::env::var_os("ZEROBOX_REGISTRY_CA") {
        return Ok(Some(PathBuf::from(v)));
    }
    Ok(read_config(env)?.registry_ca.map(PathBuf::from))
}

/// The signed index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    #[serde(rename = "zerobox-index")]
    pub schema: u32,
    pub serial: u64,
    /// RFC 3339; after it the index is frozen (warning; `--strict` refuses).
    pub expires: String,
    #[serde(default)]
    pub presets: BTreeMap<String, BTreeMap<String, IndexEntry>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub sha256: String,
}

impl Index {
    pub fn latest(&self, name: &str) -> Option<(semver::Version, String)> {
        self.presets
            .get(name)?
            .iter()
            .filter_map(|(v, e)| Some((semver::Version::parse(v).ok()?, e.sha256.clone())))
            .max_by(|a, b| a.0.cmp(&b.0))
    }

    pub fn to_yaml(&self) -> String {
        let mut s = format!(
            "# zerobox registry index; written by `zerobox preset publish`.\nzerobox-index: {}\nserial: {}\nexpires: \"{}\"\npresets:\n",
            self.schema, self.serial, self.expires
        );
        if self.presets.is_empty() {
            s = s.replace("presets:\n", "presets: {}\n");
        }
        for (name, versions) in &self.presets {
            s.push_str(&format!("  {name}:\n"));
            let mut vs: Vec<(&String, &IndexEntry)> = versions.iter().collect();
            vs.sort_by_key(|(v, _)| semver::Version::parse(v).ok());
            for (v, e) in vs {
                s.push_str(&format!("    \"{v}\":\n      sha256: {}\n", e.sha256));
            }
        }
        s
    }

    fn parse(v: &VerifiedBytes, signed_serial: u64) -> Result<Index, PresetError> {
        let idx: Index = super::yaml::parse(v.bytes(), v.file())?;
        let bad = |m: String| PresetError::InvalidFile {
            file: v.file().to_string(),
            message: m,
        };
        if idx.schema != 1 {
            return Err(bad(format!(
                "unsupported index schema {}; upgrade zerobox",
                idx.schema
            )));
        }
        if idx.serial != signed_serial {
            return Err(bad(format!(
                "serial {} differs from the signed serial {signed_serial}",
                idx.serial
            )));
        }
        parse_time(&idx.expires).map_err(|m| bad(format!("expires: {m}")))?;
        for (name, versions) in &idx.presets {
            if !super::valid_name(name) {
                return Err(bad(format!(
                    "invalid preset name {name:?} (path traversal or bad characters refused)"
                )));
            }
            for (ver, e) in versions {
                semver::Version::parse(ver)
                    .map_err(|err| bad(format!("{name}: invalid version {ver:?} ({err})")))?;
                if e.sha256.len() != 64 || !e.sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad(format!("{name}@{ver}: sha256 must be 64 hex digits")));
                }
            }
        }
        Ok(idx)
    }
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))
}

fn now_rfc3339(offset: Duration) -> String {
    let t = time::OffsetDateTime::now_utc() + offset;
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What the cache remembers to refuse rollbacks.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seen {
    #[serde(default)]
    index: BTreeMap<String, SeenIndex>,
    #[serde(default)]
    presets: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenIndex {
    serial: u64,
    sha256: String,
}

impl Seen {
    /// Keep, for every registry and preset, the higher of `self` and
    /// `other`: whatever a caller did, the state never goes down.
    fn merge_max(&mut self, other: &Seen) {
        for (k, o) in &other.index {
            match self.index.get(k) {
                Some(mine) if mine.serial >= o.serial => {}
                _ => {
                    self.index.insert(k.clone(), o.clone());
                }
            }
        }
        for (name, o) in &other.presets {
            let ov = semver::Version::parse(o).ok();
            let mine = self
                .presets
                .get(name)
                .and_then(|v| semver::Version::parse(v).ok());
            if ov.is_some() && mine.is_none_or(|m| Some(m) < ov) {
                self.presets.insert(name.clone(), o.clone());
            }
        }
    }
}

/// Longest wait for the rollback state's lock.
const LOCK_WAIT: Duration = Duration::from_secs(20);

fn seen_path(env: &PresetEnv) -> PathBuf {
    env.cache_dir.join("seen.json")
}

/// Open a file of zerobox's own state without following a symlink, as a
/// regular file only.
fn open_state(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The rollback state, read strictly: absent is "nothing seen yet"; a file
/// that cannot be read or parsed is an error (reading it as "nothing seen"
/// would let a replayed old index pass).
fn read_seen(env: &PresetEnv) -> Result<Seen, PresetError> {
    use std::io::Read;
    let path = seen_path(env);
    let corrupt = |why: String| {
        PresetError::State {
        file: path.display().to_string(),
        message: format!(
            "cannot use the registry rollback state ({why}). zerobox will not guess which index serials it has seen. If you trust the registry's current index, reset the state with `rm {}` and run again",
            path.display()
        ),
    }
    };
    let mut f = match open_state(&path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Seen::default()),
        Err(e) => return Err(corrupt(e.to_string())),
    };
    let mut bytes = Vec::new();
    (&mut f)
        .take(MAX_INDEX_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not valid state: {e}")))
}

/// Run `f` on the rollback state under an exclusive lock
/// (`seen.lock`, flock): the state is re-read under the lock, `f` checks
/// against it and raises what it saw, the result is merged with what was
/// read (max, never lower) and written atomically. Two concurrent runs can
/// therefore neither lower a serial nor both pass a check the other's
/// write would have failed.
fn with_seen<T>(
    env: &PresetEnv,
    f: impl FnOnce(&mut Seen) -> Result<T, PresetError>,
) -> Result<T, PresetError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &env.cache_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PresetError::io(dir, e))?;
    let lock_path = dir.join("seen.lock");
    let lock = open_state(&lock_path, true).map_err(|e| PresetError::io(&lock_path, e))?;
    // Bounded wait: any process that can read the cache dir can take the
    // lock, and a run must fail with a message rather than hang.
    let waited = Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if waited.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(PresetError::State {
                    file: lock_path.display().to_string(),
                    message: format!(
                        "held by another process for over {} s; wait for other zerobox runs to finish (`fuser {}` names the holder)",
                        LOCK_WAIT.as_secs(),
                        lock_path.display()
                    ),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(PresetError::io(&lock_path, e)),
        }
    }
    let before = read_seen(env)?;
    let mut seen = before.clone();
    let out = f(&mut seen)?;
    seen.merge_max(&before);
    if seen != before {
        let bytes = serde_json::to_vec_pretty(&seen).map_err(|source| PresetError::Encode {
            what: "the highest serials seen",
            source,
        })?;
        write_atomic(&seen_path(env), &bytes)?;
    }
    drop(lock);
    Ok(out)
}

pub fn registry_key(url: &str) -> String {
    sha256_hex(url.trim_end_matches('/').as_bytes())[..16].to_string()
}

pub fn cached_preset_path(env: &PresetEnv, name: &str, version: &str) -> PathBuf {
    env.cache_dir
        .join("presets")
        .join(name)
        .join(format!("{version}.yaml"))
}

/// Names in cached indexes (no network).
pub fn cached_names(env: &PresetEnv) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(env.cache_dir.join("registries")) else {
        return out;
    };
    let ring = KeyRing::load(env).ok();
    for e in entries.flatten() {
        let dir = e.path();
        let (Ok(b), Ok(s)) = (
            std::fs::read(dir.join("index.yaml")),
            std::fs::read(dir.join("index.yaml.minisig")),
        ) else {
            continue;
        };
        let Some(ring) = ring.as_ref() else { continue };
        if let Ok((v, serial)) = sign::verify_index(ring, b, &s, "cached index") {
            if let Ok(idx) = Index::parse(&v, serial) {
                out.extend(idx.presets.keys().cloned());
            }
        }
    }
    out
}

// ---------------------------------------------------------------- fetching

pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// Registry health for this run (the process): a registry that failed to
/// answer once is down for the rest of the run, and all registry requests
/// share one budget of time (the time spent waiting on them adds up, so
/// the run's total is bounded however many presets its chain names). A
/// stalled registry therefore costs one timeout per run, not one per
/// preset in an `extends` chain.
struct Health {
    down: std::collections::BTreeSet<String>,
    spent: Duration,
}

static HEALTH: std::sync::Mutex<Health> = std::sync::Mutex::new(Health {
    down: std::collections::BTreeSet::new(),
    spent: Duration::ZERO,
});

/// Longest a single request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The run's overall registry budget, unless `ZEROBOX_REGISTRY_TIMEOUT_MS`
/// (1..=600000) says otherwise (tests use a short one).
const RUN_BUDGET: Duration = Duration::from_secs(30);

fn run_budget() -> Duration {
    std::env::var("ZEROBOX_REGISTRY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| (1..=600_000).contains(ms))
        .map(Duration::from_millis)
        .unwrap_or(RUN_BUDGET)
}

fn health() -> std::sync::MutexGuard<'static, Health> {
    // A poisoned lock only means a thread panicked while holding it; the
    // set and the deadline stay meaningful.
    HEALTH.lock().unwrap_or_else(|e| e.into_inner())
}

/// The time left for a request to `base`, or why there is none.
fn time_left(base: &str) -> Result<Duration, String> {
    let mut h = health();
    if h.down.contains(base) {
        return Err("it did not answer earlier in this run; not asked again".into());
    }
    let left = run_budget().saturating_sub(h.spent);
    if left.is_zero() {
        h.down.insert(base.to_string());
        return Err("this run's time for registry requests is used up".into());
    }
    Ok(left.min(REQUEST_TIMEOUT))
}

fn spend(took: Duration) {
    let mut h = health();
    h.spent = h.spent.saturating_add(took);
}

fn mark_down(base: &str) {
    health().down.insert(base.to_string());
}

/// A registry endpoint: `file://` directory or HTTPS base URL.
pub struct Remote {
    pub url: String,
    client: Option<reqwest::Client>,
}

impl Remote {
    pub fn new(url: &str, env: &PresetEnv) -> Result<Self, PresetError> {
        // Also for a URL from a pin in the lock file, not only the config.
        let url = check_registry_url(url.trim(), "the registry setting or a pin")?;
        if url.starts_with("file://") {
            return Ok(Remote { url, client: None });
        }
        let client =
            build_client(extra_ca(env)?.as_deref()).map_err(|m| PresetError::Registry {
                url: url.clone(),
                message: m,
            })?;
        Ok(Remote {
            url,
            client: Some(client),
        })
    }

    fn join(&self, rel: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), rel)
    }

    /// Fetch `rel` (at most `limit` bytes), conditionally on `etag`.
    pub fn fetch(
        &self,
        rel: &str,
        limit: usize,
        etag: Option<&str>,
    ) -> Result<Fetched, PresetError> {
        let url = self.join(rel);
        let Some(client) = &self.client else {
            let path = PathBuf::from(url.trim_start_matches("file://"));
            if !path.exists() {
                return Err(PresetError::Registry {
                    url,
                    message: "not found".into(),
                });
            }
            let bytes = read_capped(&path, limit)?;
            return Ok(Fetched::Body { bytes, etag: None });
        };
        let base = self.url.trim_end_matches('/').to_string();
        let timeout = time_left(&base).map_err(|message| PresetError::Unreachable {
            url: url.clone(),
            message,
        })?;
        let client = client.clone();
        let etag = etag.map(str::to_string);
        let started = Instant::now();
        // Own thread and runtime: callers may or may not be inside tokio.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| PresetError::Fetch(format!("cannot start its runtime: {e}")))?;
            rt.block_on(fetch_https(&client, &url, limit, etag.as_deref(), timeout))
        });
        let res = handle
            .join()
            .unwrap_or_else(|_| Err(PresetError::Fetch("its thread panicked".into())));
        spend(started.elapsed());
        if matches!(res, Err(PresetError::Unreachable { .. })) {
            mark_down(&base);
        }
        res
    }
}

fn build_client(extra_ca: Option<&Path>) -> Result<reqwest::Client, String> {
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = extra_ca {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("cannot read the registry CA {}: {e}", ca.display()))?;
        for c in certs {
            let c = c.map_err(|e| format!("bad PEM in {}: {e}", ca.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("bad CA certificate in {}: {e}", ca.display()))?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let redirect = reqwest::redirect::Policy::custom(|attempt| {
        let scheme = attempt.url().scheme().to_string();
        if scheme != "https" {
            attempt.error(format!("redirect to a {scheme}: URL refused (only https)"))
        } else if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .https_only(true)
        .redirect(redirect)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("zerobox/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the HTTPS client: {e}"))
}

async fn fetch_https(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
    etag: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, PresetError> {
    let unreachable = |message: String| PresetError::Unreachable {
        url: url.to_string(),
        message,
    };
    let mut req = client.get(url).timeout(timeout);
    if let Some(tag) = etag {
        req = req.header("If-None-Match", tag);
    }
    let start = Instant::now();
    let mut resp = req.send().await.map_err(|e| {
        if e.is_redirect() {
            PresetError::Registry {
                url: url.to_string(),
                message: error_chain(&e),
            }
        } else {
            unreachable(error_chain(&e))
        }
    })?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if status.is_server_error() {
        return Err(unreachable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(PresetError::Registry {
            url: url.to_string(),
            message: format!("HTTP {status}"),
        });
    }
    let too_large = || PresetError::TooLarge {
        what: url.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let new_etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let total = resp.content_length();
    let mut bytes = Vec::new();
    let mut bar: Option<indicatif::ProgressBar> = None;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?
    {
        if bytes.len() + chunk.len() > limit {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
        if bar.is_none() && start.elapsed() > Duration::from_millis(300) {
            let b = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.set_message(format!("downloading {url}"));
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_position(bytes.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(Fetched::Body {
        bytes,
        etag: new_etag,
    })
}

/// An error with its sources (reqwest's top-level messages are terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

// --------------------------------------------------------------- resolving

/// Loads named presets from every source, verifying each.
pub struct Resolver<'a> {
    env: &'a PresetEnv,
    ring: Option<KeyRing>,
    loaded: BTreeMap<String, Preset>,
    index: Option<Option<(Index, String)>>,
    warned: bool,
    /// Names loaded from the project's lock file.
    pinned: std::collections::BTreeSet<String>,
    /// Resolve as if there were no lock file (`zerobox preset pin`).
    ignore_pins: bool,
}

fn warn(msg: &str) {
    crate::warn!("{msg}");
}

impl<'a> Resolver<'a> {
    pub fn new(env: &'a PresetEnv) -> Self {
        Resolver {
            env,
            ring: None,
            loaded: BTreeMap::new(),
            index: None,
            warned: false,
            pinned: Default::default(),
            ignore_pins: false,
        }
    }

    /// A resolver that ignores the lock file: what `zerobox preset pin`
    /// resolves a fresh chain with.
    pub fn ignoring_pins(env: &'a PresetEnv) -> Self {
        let mut r = Self::new(env);
        r.ignore_pins = true;
        r
    }

    /// Was `name` loaded from a pin?
    pub fn is_pinned(&self, name: &str) -> bool {
        self.pinned.contains(name)
    }

    /// `name` is a building block of the pinned preset `by`: it must be
    /// pinned too (a pin covers the whole `extends` chain), else refused
    /// before anything is loaded for it.
    pub fn require_pinned(&self, name: &str, by: &str, root: &str) -> Result<(), PresetError> {
        if self.ignore_pins || !self.pinned.contains(by) {
            return Ok(());
        }
        if project::trusted_pin(self.env, name)?.is_none() {
            return Err(PresetError::PinChain {
                name: name.into(),
                by: by.into(),
                root: root.into(),
                pin_file: project::lock_path(&self.env.project_dir)
                    .display()
                    .to_string(),
            });
        }
        Ok(())
    }

    fn ring(&mut self) -> Result<&KeyRing, PresetError> {
        match &mut self.ring {
            Some(ring) => Ok(ring),
            slot => Ok(slot.insert(KeyRing::load(self.env)?)),
        }
    }

    pub fn load_file(&mut self, path: &Path) -> Result<Preset, PresetError> {
        let env = self.env;
        let v = sign::verify_local(self.ring()?, env, path)?;
        parse_preset(&v)
    }

    pub fn bundled(&mut self, name: &str) -> Result<Option<Preset>, PresetError> {
        let Some(b) = bundled::find(name) else {
            return Ok(None);
        };
        let v = sign::verify_preset(
            self.ring()?,
            b.yaml.to_vec(),
            b.sig,
            &format!("bundled presets/{name}.yaml"),
            "bundled",
            Some((name, None)),
        )?;
        parse_preset(&v).map(Some)
    }

    pub fn load_named(&mut self, name: &str) -> Result<Preset, PresetError> {
        super::check_name(name)?;
        if let Some(p) = self.loaded.get(name) {
            return Ok(p.clone());
        }
        let pin = if self.ignore_pins {
            None
        } else {
            project::trusted_pin(self.env, name)?
        };
        let p = if let Some((pin, lock)) = pin {
            let p = self.load_pinned(&pin, &lock)?;
            self.pinned.insert(name.to_string());
            p
        } else {
            let from_registry = match self.latest_from_registry(name) {
                Err(PresetError::Unreachable { url, message }) => {
                    self.warn_once(&format!(
                        "registry {url} unreachable ({message}); using cached and bundled presets"
                    ));
                    None
                }
                other => other?,
            };
            let bundled = self.bundled(name)?;
            match (from_registry, bundled) {
                (Some(r), Some(b)) if b.version > r.version => b,
                (Some(r), _) => r,
                (None, Some(b)) => b,
                (None, None) => {
                    let s = super::suggestions(name, self.env);
                    let hint = if s.is_empty() {
                        "; `zerobox preset list` shows the known presets".to_string()
                    } else {
                        format!("; did you mean {}?", s.join(", "))
                    };
                    return Err(PresetError::NotFound {
                        name: name.into(),
                        hint,
                    });
                }
            }
        };
        self.loaded.insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// The registry's index (remote when reachable, else the cached copy),
    /// verified, rollback- and expiry-checked. `None` without a registry.
    pub fn index(&mut self) -> Result<Option<(Index, String)>, PresetError> {
        if let Some(i) = &self.index {
            return Ok(i.clone());
        }
        let Some(url) = registry_url(self.env)? else {
            self.index = Some(None);
            return Ok(None);
        };
        let idx = self.fetch_index(&url)?;
        self.index = Some(idx.clone());
        Ok(idx)
    }

    fn fetch_index(&mut self, url: &str) -> Result<Option<(Index, String)>, PresetError> {
        let env = self.env;
        let dir = env.cache_dir.join("registries").join(registry_key(url));
        let cached_bytes = std::fs::read(dir.join("index.yaml")).ok();
        let cached_sig = std::fs::read(dir.join("index.yaml.minisig")).ok();
        let cached_etag = std::fs::read_to_string(dir.join("index.etag")).ok();
        let have_cache = cached_bytes.is_some() && cached_sig.is_some();

        let mut fresh: Option<(Vec<u8>, Vec<u8>, Option<String>)> = None;
        if !env.offline {
            let remote = Remote::new(url, env)?;
            let etag = if have_cache {
                cached_etag.as_deref()
            } else {
                None
            };
            match remote.fetch("index.yaml", MAX_INDEX_BYTES, etag) {
                Ok(Fetched::NotModified) => {}
                Ok(Fetched::Body { bytes, etag }) => {
                    let sig = match remote.fetch("index.yaml.minisig", MAX_SIG_BYTES, None)? {
                        Fetched::Body { bytes, .. } => bytes,
                        Fetched::NotModified => {
                            return Err(PresetError::Registry {
                                url: url.into(),
                                message: "unexpected 304 for index.yaml.minisig".into(),
                            })
                        }
                    };
                    fresh = Some((bytes, sig, etag));
                }
                Err(PresetError::Unreachable { message, .. }) => {
                    self.warn_once(&format!(
                        "registry {url} unreachable ({message}); using the cached index and bundled presets"
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        let idx = match (fresh, cached_bytes, cached_sig) {
            (Some((b, s, etag)), _, _) => {
                // Verified and rollback-checked before anything is cached.
                // Verified and rollback-checked before anything is cached;
                // cached under the state lock, so two runs cannot leave
                // one's index beside the other's signature.
                let persist = || -> Result<(), PresetError> {
                    write_atomic(&dir.join("index.yaml"), &b)?;
                    write_atomic(&dir.join("index.yaml.minisig"), &s)?;
                    match &etag {
                        Some(t) => write_atomic(&dir.join("index.etag"), t.as_bytes())?,
                        None => {
                            let _ = std::fs::remove_file(dir.join("index.etag"));
                        }
                    }
                    Ok(())
                };
                self.verify_and_check_index(url, b.clone(), &s, Some(&persist))?
                    .0
            }
            // The cached copy is verified again on every use.
            (None, Some(b), Some(s)) => self.verify_and_check_index(url, b, &s, None)?.0,
            _ => return Ok(None),
        };
        // Expiry (freeze attack): warn, strict refuses.
        // (Checked when the index was parsed; a failure here is refused.)
        let expires = parse_time(&idx.expires).map_err(|message| PresetError::Registry {
            url: url.to_string(),
            message: format!("index expires: {message}"),
        })?;
        if expires < time::OffsetDateTime::now_utc() {
            if env.strict {
                return Err(PresetError::Expired {
                    url: url.into(),
                    expires: idx.expires.clone(),
                });
            }
            self.warn_once(&format!(
                "registry index {url} expired at {}; it may be frozen by an attacker (use --strict to refuse)",
                idx.expires
            ));
        }
        Ok(Some((idx, url.to_string())))
    }

    fn warn_once(&mut self, msg: &str) {
        if !self.warned {
            warn(msg);
            self.warned = true;
        }
    }

    /// Verify an index, refuse a serial lower than seen (or the same serial
    /// with other content), remember the new highest.
    fn verify_and_check_index(
        &mut self,
        url: &str,
        bytes: Vec<u8>,
        sig: &[u8],
        persist: Option<&dyn Fn() -> Result<(), PresetError>>,
    ) -> Result<(Index, u64), PresetError> {
        let env = self.env;
        let (v, serial) =
            sign::verify_index(self.ring()?, bytes, sig, &format!("{url}/index.yaml"))?;
        let idx = Index::parse(&v, serial)?;
        let key = registry_key(url);
        with_seen(env, |seen| {
            if let Some(prev) = seen.index.get(&key) {
                if serial < prev.serial {
                    return Err(PresetError::Rollback {
                        what: format!("registry index {url}"),
                        message: format!(
                            "serial {serial} is older than serial {} already seen",
                            prev.serial
                        ),
                    });
                }
                if serial == prev.serial && v.sha256() != prev.sha256 {
                    return Err(PresetError::Rollback {
                        what: format!("registry index {url}"),
                        message: format!("serial {serial} was already seen with other content"),
                    });
                }
            }
            if seen.index.get(&key).is_none_or(|p| p.serial < serial) {
                seen.index.insert(
                    key.clone(),
                    SeenIndex {
                        serial,
                        sha256: v.sha256().to_string(),
                    },
                );
            }
            // Checked above: this index is the highest seen (or equal to
            // it), so the cache only ever holds the newest one.
            if let Some(persist) = persist {
                persist()?;
            }
            Ok(())
        })?;
        Ok((idx, serial))
    }

    fn latest_from_registry(&mut self, name: &str) -> Result<Option<Preset>, PresetError> {
        let Some((idx, url)) = self.index()? else {
            return Ok(None);
        };
        let Some((version, sha)) = idx.latest(name) else {
            return Ok(None);
        };
        let check = |seen: &Seen| -> Result<(), PresetError> {
            if let Some(prev) = seen
                .presets
                .get(name)
                .and_then(|v| semver::Version::parse(v).ok())
            {
                if version < prev {
                    return Err(PresetError::Rollback {
                        what: format!("preset {name}"),
                        message: format!(
                            "the registry offers {version} but {prev} was already seen"
                        ),
                    });
                }
            }
            Ok(())
        };
        // Checked before the download (no point fetching a rollback) and
        // again under the lock after it, when the version is recorded.
        with_seen(self.env, |seen| check(seen))?;
        let p = self.fetch_version(&url, name, &version, &sha)?;
        with_seen(self.env, |seen| {
            check(seen)?;
            seen.presets.insert(name.to_string(), version.to_string());
            Ok(())
        })?;
        Ok(Some(p))
    }

    /// One exact version: from the cache when its digest matches, else
    /// downloaded, verified and cached (atomically).
    pub fn fetch_version(
        &mut self,
        url: &str,
        name: &str,
        version: &semver::Version,
        sha: &str,
    ) -> Result<Preset, PresetError> {
        let env = self.env;
        let path = cached_preset_path(env, name, &version.to_string());
        let sig_path = sign::sig_path_of(&path);
        if let (Ok(b), Ok(s)) = (
            read_capped(&path, MAX_PRESET_BYTES),
            read_capped(&sig_path, MAX_SIG_BYTES),
        ) {
            if sha256_hex(&b) == sha {
                let v = sign::verify_preset(
                    self.ring()?,
                    b,
                    &s,
                    &path.display().to_string(),
                    "cache",
                    Some((name, Some(version))),
                )?;
                return parse_preset(&v);
            }
        }
        if env.offline {
            return Err(PresetError::Unreachable {
                url: url.into(),
                message: format!("{name}@{version} is not cached and zerobox is offline"),
            });
        }
        let remote = Remote::new(url, env)?;
        let rel = format!("presets/{name}/{version}.yaml");
        let body = |f: Fetched| match f {
            Fetched::Body { bytes, .. } => Ok(bytes),
            Fetched::NotModified => Err(PresetError::Registry {
                url: url.into(),
                message: "unexpected 304".into(),
            }),
        };
        let bytes = body(remote.fetch(&rel, MAX_PRESET_BYTES, None)?)?;
        let sig = body(remote.fetch(&format!("{rel}.minisig"), MAX_SIG_BYTES, None)?)?;
        let file = format!("{}/{rel}", url.trim_end_matches('/'));
        let v = sign::verify_preset(
            self.ring()?,
            bytes.clone(),
            &sig,
            &file,
            url,
            Some((name, Some(version))),
        )?;
        if v.sha256() != sha {
            return Err(PresetError::Digest {
                what: file,
                expected: sha.into(),
                actual: v.sha256().into(),
            });
        }
        let p = parse_preset(&v)?;
        write_atomic(&path, &bytes)?;
        write_atomic(&sig_path, &sig)?;
        Ok(p)
    }

    fn load_pinned(&mut self, pin: &project::Pin, lock: &Path) -> Result<Preset, PresetError> {
        let version =
            semver::Version::parse(&pin.version).map_err(|source| PresetError::PinVersion {
                version: pin.version.clone(),
                pin_file: lock.display().to_string(),
                source,
            })?;
        let matches = |p: &Preset, key: Option<&str>| {
            p.sha256 == pin.sha256 && key.is_none_or(|k| k == pin.key)
        };
        // cache
        let path = cached_preset_path(self.env, &pin.name, &pin.version);
        if let (Ok(b), Ok(s)) = (
            read_capped(&path, MAX_PRESET_BYTES),
            read_capped(&sign::sig_path_of(&path), MAX_SIG_BYTES),
        ) {
            if sha256_hex(&b) == pin.sha256 {
                if let Ok(v) = sign::verify_preset(
                    self.ring()?,
                    b,
                    &s,
                    &path.display().to_string(),
                    "cache",
                    Some((&pin.name, Some(&version))),
                ) {
                    let key = v.key_id().map(str::to_string);
                    if let Ok(p) = parse_preset(&v) {
                        if matches(&p, key.as_deref()) {
                            return Ok(p);
                        }
                    }
                }
            }
        }
        // registry named by the pin
        if pin.registry != "bundled" && !self.env.offline {
            // Any failure (unreachable, other digest, bad signature) means
            // this source does not hold the pinned content: try the next.
            if let Ok(p) =
                self.fetch_version(&pin.registry.clone(), &pin.name, &version, &pin.sha256)
            {
                if matches(&p, None) {
                    return Ok(p);
                }
            }
        }
        // bundled
        if let Some(b) = bundled::find(&pin.name) {
            if sha256_hex(b.yaml) == pin.sha256 {
                if let Some(p) = self.bundled(&pin.name)? {
                    if matches(&p, None) {
                        return Ok(p);
                    }
                }
            }
        }
        Err(PresetError::PinNotFound {
            name: pin.name.clone(),
            version: pin.version.clone(),
            sha256: pin.sha256.clone(),
            pin_file: lock.display().to_string(),
        })
    }

    /// Key id that signed a loaded preset (for pins).
    pub fn key_id_of(&mut self, p: &Preset) -> Result<String, PresetError> {
        // Re-verify from its source bytes is not needed: every source is
        // signed; look the signature up where the bytes came from.
        let sig: Vec<u8> = if p.source == "bundled" {
            bundled::find(&p.name)
                .map(|b| b.sig.to_vec())
                .unwrap_or_default()
        } else {
            let path = cached_preset_path(self.env, &p.name, &p.version.to_string());
            std::fs::read(sign::sig_path_of(&path)).unwrap_or_default()
        };
        let text = String::from_utf8_lossy(&sig);
        let line = text.lines().nth(1).unwrap_or_default();
        use base64::Engine as _;
        let bin = base64::engine::general_purpose::STANDARD
            .decode(line.trim())
            .unwrap_or_default();
        let id: [u8; 8] = bin
            .get(2..10)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| PresetError::NoSignature {
                preset: p.origin().to_string(),
            })?;
        Ok(format!("{:016X}", u64::from_le_bytes(id)))
    }
}

// --------------------------------------------------------------- publishing

/// `zerobox preset publish FILE --registry DIR --key KEY`: validate and sign
/// the preset, refuse an existing version, write it, bump and re-sign the
/// index. Returns (name, version, new serial).
pub fn publish(
    file: &Path,
    registry_dir: &Path,
    key: &Path,
    expires_days: u64,
) -> Result<(String, String, u64), PresetError> {
    let sk = signer::load_secret_key(key)?;
    let bytes = read_capped(file, MAX_PRESET_BYTES)?;
    let (sig, preset) = signer::sign_preset(&sk, &bytes, &file.display().to_string())?;
    let ring = KeyRing::single(&signer::public_of(&sk)?, "publisher key").map_err(|message| {
        PresetError::BadKey {
            what: "publisher key",
            message,
        }
    })?;
    let index_path = registry_dir.join("index.yaml");
    let mut index = if index_path.exists() {
        let b = read_capped(&index_path, MAX_INDEX_BYTES)?;
        let s = read_capped(&sign::sig_path_of(&index_path), MAX_SIG_BYTES)?;
        let (v, serial) = sign::verify_index(&ring, b, &s, &index_path.display().to_string())?;
        Index::parse(&v, serial)?
    } else {
        Index {
            schema: 1,
            serial: 0,
            expires: String::new(),
            presets: BTreeMap::new(),
        }
    };
    let version = preset.version.to_string();
    if index
        .presets
        .get(&preset.name)
        .is_some_and(|vs| vs.contains_key(&version))
    {
        return Err(PresetError::Usage(format!(
            "{}@{version} is already published in {}; bump `version` in {}",
            preset.name,
            registry_dir.display(),
            file.display()
        )));
    }
    let dest = registry_dir
        .join("presets")
        .join(&preset.name)
        .join(format!("{version}.yaml"));
    if dest.exists() {
        return Err(PresetError::Usage(format!(
            "{} already exists; bump the version",
            dest.display()
        )));
    }
    write_atomic(&dest, &bytes)?;
    write_atomic(&sign::sig_path_of(&dest), sig.as_bytes())?;
    index.serial += 1;
    index.expires = now_rfc3339(Duration::from_secs(expires_days * 86_400));
    index
        .presets
        .entry(preset.name.clone())
        .or_default()
        .insert(
            version.clone(),
            IndexEntry {
                sha256: sha256_hex(&bytes),
            },
        );
    let text = index.to_yaml();
    let isig = signer::sign_bytes(
        &sk,
        text.as_bytes(),
        &signer::index_comment(index.serial, text.as_bytes()),
    )?;
    // self-check before writing
    let (v, serial) = sign::verify_index(
        &ring,
        text.clone().into_bytes(),
        isig.as_bytes(),
        "new index",
    )?;
    Index::parse(&v, serial)?;
    write_atomic(&index_path, text.as_bytes())?;
    write_atomic(&sign::sig_path_of(&index_path), isig.as_bytes())?;
    Ok((preset.name, version, index.serial))
}

/// Re-sign an index with a new expiry (and bumped serial) without adding a
/// preset: `zerobox preset publish --refresh --registry DIR --key KEY`.
pub fn refresh_index(
    registry_dir: &Path,
    key: &Path,
    expires_days: u64,
) -> Result<u64, PresetError> {
    let sk = signer::load_secret_key(key)?;
    let ring = KeyRing::single(&signer::public_of(&sk)?, "publisher key").map_err(|message| {
        PresetError::BadKey {
            what: "publisher key",
            message,
        }
    })?;
    let index_path = registry_dir.join("index.yaml");
    let b = read_capped(&index_path, MAX_INDEX_BYTES)?;
    let s = read_capped(&sign::sig_path_of(&index_path), MAX_SIG_BYTES)?;
    let (v, serial) = sign::verify_index(&ring, b, &s, &index_path.display().to_string())?;
    let mut index = Index::parse(&v, serial)?;
    index.serial += 1;
    index.expires = now_rfc3339(Duration::from_secs(expires_days * 86_400));
    let text = index.to_yaml();
    let isig = signer::sign_bytes(
        &sk,
        text.as_bytes(),
        &signer::index_comment(index.serial, text.as_bytes()),
    )?;
    write_atomic(&index_path, text.as_bytes())?;
    write_atomic(&sign::sig_path_of(&index_path), isig.as_bytes())?;
    Ok(index.serial)
}
