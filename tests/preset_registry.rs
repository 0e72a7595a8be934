//! Registry end to end: a real HTTPS server on 127.0.0.1 (rcgen test CA)
//! and `file://` registries; fetch, cache, ETag, offline fallback, pins and
//! every attack the registry protocol refuses. Loopback only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use zerobox::preset::{self, registry, sign, signer, PresetEnv, PresetError};

fn common_bin() -> PathBuf {
    match std::env::var_os("ZEROBOX_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_zerobox")),
    }
}

// ------------------------------------------------------------------ helpers

struct Key {
    sk_path: PathBuf,
    pub_text: String,
    sk: minisign::SecretKey,
}

fn keypair(dir: &Path, name: &str) -> Key {
    let (sk, pk, _) = signer::keygen().unwrap();
    let sk_path = dir.join(format!("{name}.key"));
    std::fs::write(&sk_path, sk.as_bytes()).unwrap();
    let sk = minisign::SecretKeyBox::from_string(&sk)
        .unwrap()
        .into_unencrypted_secret_key()
        .unwrap();
    Key {
        sk_path,
        pub_text: pk,
        sk,
    }
}

struct Ctx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    env: PresetEnv,
    key: Key,
    reg: PathBuf,
}

fn ctx() -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = PresetEnv {
        config_dir: root.join("config/zerobox"),
        cache_dir: root.join("cache/zerobox"),
        data_dir: root.join("data/zerobox"),
        project_dir: root.join("proj"),
        strict: false,
        offline: false,
    };
    std::fs::create_dir_all(&env.project_dir).unwrap();
    let key = keypair(&root, "test");
    std::fs::create_dir_all(env.config_dir.join("keys")).unwrap();
    std::fs::write(env.config_dir.join("keys/test.pub"), &key.pub_text).unwrap();
    let reg = root.join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    Ctx {
        _dir: dir,
        root,
        env,
        key,
        reg,
    }
}

fn doc(name: &str, version: &str, extra: &str) -> String {
    format!("zerobox: 1\nname: {name}\nversion: {version}\ncommand: {name}\nnetwork:\n  allow: [api.{name}.example]\n{extra}")
}

impl Ctx {
    fn publish(&self, name: &str, version: &str, extra: &str) {
        let f = self.root.join(format!("{name}-{version}.yaml"));
        std::fs::write(&f, doc(name, version, extra)).unwrap();
        registry::publish(&f, &self.reg, &self.key.sk_path, 30).unwrap();
    }
    fn use_registry(&self, url: &str, ca: Option<&Path>) {
        let mut cfg = format!("registry: \"{url}\"\n");
        if let Some(ca) = ca {
            cfg.push_str(&format!("registry_ca: \"{}\"\n", ca.display()));
        }
        std::fs::write(self.env.config_dir.join("config.yaml"), cfg).unwrap();
    }
    fn file_url(&self) -> String {
        format!("file://{}", self.reg.display())
    }
    /// Re-sign the registry index after editing it by hand (serial bumped).
    fn resign_index(&self, edit: impl FnOnce(&mut registry::Index)) {
        let p = self.reg.join("index.yaml");
        let text = std::fs::read_to_string(&p).unwrap();
        let mut idx: registry::Index = serde_saphyr::from_str(&text).unwrap();
        idx.serial += 1;
        edit(&mut idx);
        let text = idx.to_yaml();
        let sig = signer::sign_bytes(
            &self.key.sk,
            text.as_bytes(),
            &signer::index_comment(idx.serial, text.as_bytes()),
        )
        .unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::write(self.reg.join("index.yaml.minisig"), sig).unwrap();
    }
}

// ------------------------------------------------------------- test server

#[derive(Default)]
struct ServerState {
    root: PathBuf,
    /// path → special response
    special: HashMap<String, Special>,
    requests: Vec<String>,
    not_modified: usize,
    /// Index variants (serial, index.yaml, index.yaml.minisig) served in
    /// turn, one client at a time: a client's index and signature always
    /// pair up (see `gate`).
    variants: Vec<(u64, Vec<u8>, Vec<u8>)>,
    next_variant: usize,
    current: Option<(u64, tokio::sync::OwnedSemaphorePermit)>,
    /// Serials served (index and signature both).
    served: Vec<u64>,
    /// Delay the n-th preset download by `(slow_presets - n) * 60 ms`: the
    /// first client to fetch finishes last.
    slow_presets: usize,
    preset_downloads: usize,
}

#[derive(Clone)]
enum Special {
    Redirect(String),
    Big(usize),
    Status(u16),
}

struct Server {
    url: String,
    ca_pem: PathBuf,
    state: Arc<Mutex<ServerState>>,
    _rt: tokio::runtime::Runtime,
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    st: Arc<Mutex<ServerState>>,
    gate: Arc<tokio::sync::Semaphore>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let has_variants = !st.lock().unwrap().variants.is_empty();
    if has_variants && path == "index.yaml" {
        // One client between its index and its signature at a time.
        let permit = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            gate.clone().acquire_owned(),
        )
        .await;
        let mut s = st.lock().unwrap();
        let i = s.next_variant.min(s.variants.len() - 1);
        s.next_variant += 1;
        let (serial, body, _) = s.variants[i].clone();
        s.current = permit.ok().and_then(Result::ok).map(|p| (serial, p));
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    if has_variants && path == "index.yaml.minisig" {
        let mut s = st.lock().unwrap();
        let Some((serial, permit)) = s.current.take() else {
            return Ok(Response::builder()
                .status(500)
                .body(Full::new(Bytes::new()))
                .unwrap());
        };
        let sig = s.variants.iter().find(|v| v.0 == serial).unwrap().2.clone();
        s.served.push(serial);
        drop(permit);
        return Ok(Response::new(Full::new(Bytes::from(sig))));
    }
    if path.starts_with("presets/") && path.ends_with(".yaml") {
        let delay = {
            let mut s = st.lock().unwrap();
            let n = s.preset_downloads;
            s.preset_downloads += 1;
            s.slow_presets.saturating_sub(n) as u64 * 60
        };
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut s = st.lock().unwrap();
    s.requests.push(path.clone());
    let resp = |code: u16, body: Vec<u8>| {
        Response::builder()
            .status(code)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if let Some(sp) = s.special.get(&path).cloned() {
        return Ok(match sp {
            Special::Redirect(to) => Response::builder()
                .status(StatusCode::FOUND)
                .header("location", to)
                .body(Full::new(Bytes::new()))
                .unwrap(),
            Special::Big(n) => resp(200, vec![b'a'; n]),
            Special::Status(c) => resp(c, vec![]),
        });
    }
    if path.contains("..") {
        return Ok(resp(400, vec![]));
    }
    match std::fs::read(s.root.join(&path)) {
        Ok(body) => {
            let etag = format!("\"{}\"", &preset_sha(&body)[..16]);
            if inm.as_deref() == Some(etag.as_str()) {
                s.not_modified += 1;
                return Ok(Response::builder()
                    .status(304)
                    .header("etag", etag)
                    .body(Full::new(Bytes::new()))
                    .unwrap());
            }
            Ok(Response::builder()
                .status(200)
                .header("etag", etag)
                .body(Full::new(Bytes::from(body)))
                .unwrap())
        }
        Err(_) => Ok(resp(404, vec![])),
    }
}

fn preset_sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn serve(root: &Path, dir: &Path) -> Server {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let state = Arc::new(Mutex::new(ServerState {
        root: root.to_path_buf(),
        ..Default::default()
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let st = state.clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let st = st.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, st.clone(), gate.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                }
            });
        }
    });
    Server {
        url: format!("https://127.0.0.1:{port}"),
        ca_pem,
        state,
        _rt: rt,
    }
}

fn https_ctx() -> (Ctx, Server) {
    let c = ctx();
    let s = serve(&c.reg, &c.root);
    c.use_registry(&s.url, Some(&s.ca_pem));
    (c, s)
}

fn err_of(r: Result<preset::LoadedPreset, PresetError>) -> PresetError {
    match r {
        Ok(p) => panic!("expected an error, loaded {}@{}", p.name, p.version),
        Err(e) => e,
    }
}

// -------------------------------------------------------------------- tests

#[test]
fn file_registry_fetch_and_cache() {
    let c = ctx();
    c.publish("demo", "1.0.0", "");
    c.use_registry(&c.file_url(), None);
    let p = preset::load("demo", &c.env).unwrap();
    assert_eq!(p.version.to_string(), "1.0.0");
    assert_eq!(p.layers.last().unwrap().origin.to_string(), "demo@1.0.0");
    assert_eq!(p.layers.last().unwrap().net_allow, vec!["api.demo.example"]);
    assert!(c.env.cache_dir.join("presets/demo/1.0.0.yaml").is_file());
    assert!(preset::exists("demo", &c.env));
    // a newer version is picked up
    c.publish("demo", "1.1.0", "");
    assert_eq!(
        preset::load("demo", &c.env).unwrap().version.to_string(),
        "1.1.0"
    );
    // bundled presets still resolve
    assert!(preset::load("claude", &c.env).is_ok());
}

#[test]
fn https_fetch_etag_and_offline_fallback() {
    let (c, s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    let p = preset::load("demo", &c.env).unwrap();
    assert_eq!(p.version.to_string(), "1.0.0");
    // second run: conditional request answered 304, preset from the cache
    let p = preset::load("demo", &c.env).unwrap();
    assert_eq!(p.version.to_string(), "1.0.0");
    {
        let st = s.state.lock().unwrap();
        assert_eq!(st.not_modified, 1, "requests: {:?}", st.requests);
        assert_eq!(
            st.requests
                .iter()
                .filter(|r| r.ends_with("1.0.0.yaml"))
                .count(),
            1,
            "preset downloaded once"
        );
    }
    // registry down: cache, with a warning, no error
    s.state
        .lock()
        .unwrap()
        .special
        .insert("index.yaml".into(), Special::Status(503));
    assert_eq!(
        preset::load("demo", &c.env).unwrap().version.to_string(),
        "1.0.0"
    );
    // offline: no request at all
    let before = s.state.lock().unwrap().requests.len();
    let mut off = c.env.clone();
    off.offline = true;
    assert_eq!(
        preset::load("demo", &off).unwrap().version.to_string(),
        "1.0.0"
    );
    assert_eq!(s.state.lock().unwrap().requests.len(), before);
    // index reachable but the preset file is not: bundled, with a warning
    c.publish("claude", "9.0.0", "");
    s.state.lock().unwrap().special.clear();
    s.state
        .lock()
        .unwrap()
        .special
        .insert("presets/claude/9.0.0.yaml".into(), Special::Status(503));
    // (the bundled version, as presets/claude.yaml declares it)
    let bundled =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/presets/claude.yaml"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("version: ").map(|v| v.trim().to_string()))
            .unwrap();
    assert_eq!(
        preset::load("claude", &c.env).unwrap().version.to_string(),
        bundled
    );
    // registry down with nothing cached: bundled presets
    let mut fresh = c.env.clone();
    fresh.cache_dir = c.root.join("cache2");
    assert!(preset::load("claude", &fresh).is_ok());
}

#[test]
fn tampered_preset_refused() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    let f = c.reg.join("presets/demo/1.0.0.yaml");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("api.demo.example", "evil.example");
    std::fs::write(&f, text).unwrap();
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Signature { .. }), "{e}");
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn wrong_key_refused() {
    let (c, _s) = https_ctx();
    // the registry is signed by a key the user never trusted
    std::fs::remove_file(c.env.config_dir.join("keys/test.pub")).unwrap();
    c.publish("demo", "1.0.0", "");
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::UnknownKey { .. }), "{e}");
    assert!(e.to_string().contains("trust-key"), "{e}");
}

#[test]
fn mix_and_match_refused() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    c.publish("other", "1.0.0", "");
    // serve demo's (validly signed) file and signature as other@1.0.0
    for ext in ["yaml", "yaml.minisig"] {
        std::fs::copy(
            c.reg.join(format!("presets/demo/1.0.0.{ext}")),
            c.reg.join(format!("presets/other/1.0.0.{ext}")),
        )
        .unwrap();
    }
    let demo_sha = preset_sha(&std::fs::read(c.reg.join("presets/demo/1.0.0.yaml")).unwrap());
    c.resign_index(|i| {
        i.presets
            .get_mut("other")
            .unwrap()
            .get_mut("1.0.0")
            .unwrap()
            .sha256 = demo_sha.clone();
    });
    let e = err_of(preset::load("other", &c.env));
    assert!(e.to_string().contains("mix-and-match"), "{e}");
}

#[test]
fn digest_not_in_index_refused() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    c.resign_index(|i| {
        i.presets
            .get_mut("demo")
            .unwrap()
            .get_mut("1.0.0")
            .unwrap()
            .sha256 = "ab".repeat(32);
    });
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Digest { .. }), "{e}");
}

#[test]
fn index_rollback_refused() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    let old_idx = std::fs::read(c.reg.join("index.yaml")).unwrap();
    let old_sig = std::fs::read(c.reg.join("index.yaml.minisig")).unwrap();
    c.publish("other", "1.0.0", "");
    preset::load("demo", &c.env).unwrap();
    // the attacker replays the older (validly signed) index
    std::fs::write(c.reg.join("index.yaml"), old_idx).unwrap();
    std::fs::write(c.reg.join("index.yaml.minisig"), old_sig).unwrap();
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Rollback { .. }), "{e}");
}

static PROCESS: Mutex<()> = Mutex::new(());

fn args(v: &[&str]) -> Vec<std::ffi::OsString> {
    v.iter().map(std::ffi::OsString::from).collect()
}

/// The process environment (cwd, XDG dirs) pointed at `c` while held.
struct ProcessEnv {
    _guard: std::sync::MutexGuard<'static, ()>,
    old_cwd: PathBuf,
}

impl Drop for ProcessEnv {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.old_cwd);
    }
}

fn process_env(c: &Ctx) -> ProcessEnv {
    let guard = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let old_cwd = std::env::current_dir().unwrap();
    std::env::set_var("XDG_CONFIG_HOME", c.root.join("config"));
    std::env::set_var("XDG_CACHE_HOME", c.root.join("cache"));
    std::env::set_var("XDG_DATA_HOME", c.root.join("data"));
    std::env::remove_var("ZEROBOX_REGISTRY");
    std::fs::create_dir_all(c.env.project_dir.join(".git")).unwrap();
    std::env::set_current_dir(&c.env.project_dir).unwrap();
    ProcessEnv {
        _guard: guard,
        old_cwd,
    }
}

fn seen_serial(c: &Ctx, url: &str) -> u64 {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.env.cache_dir.join("seen.json")).unwrap()).unwrap();
    state["index"][registry::registry_key(url)]["serial"]
        .as_u64()
        .unwrap()
}

/// Issue 8 #10: concurrent runs, each fetching an index with a higher
/// serial than the run before it and then a slow preset download (the
/// first run finishes last). The state is read and written under a lock,
/// so the final highest serial is the highest served, never lowered by a
/// run that read the state before the others wrote it.
#[test]
fn concurrent_runs_never_lower_the_serial_seen() {
    const RUNS: usize = 8;
    let (c, s) = https_ctx();
    for i in 0..RUNS {
        c.publish(&format!("p{i}"), "1.0.0", "");
    }
    let mut variants = Vec::new();
    for _ in 0..RUNS {
        c.resign_index(|_| {});
        let idx = std::fs::read(c.reg.join("index.yaml")).unwrap();
        let sig = std::fs::read(c.reg.join("index.yaml.minisig")).unwrap();
        let serial = serde_saphyr::from_slice::<registry::Index>(&idx)
            .unwrap()
            .serial;
        variants.push((serial, idx, sig));
    }
    let max = variants.iter().map(|v| v.0).max().unwrap();
    {
        let mut st = s.state.lock().unwrap();
        st.variants = variants;
        st.slow_presets = RUNS;
    }
    let children: Vec<_> = (0..RUNS)
        .map(|i| {
            let child = std::process::Command::new(common_bin())
                .args(["preset", "show", &format!("p{i}")])
                .current_dir(&c.env.project_dir)
                .env("HOME", &c.root)
                .env("XDG_CONFIG_HOME", c.root.join("config"))
                .env("XDG_CACHE_HOME", c.root.join("cache"))
                .env("XDG_DATA_HOME", c.root.join("data"))
                .env_remove("ZEROBOX_REGISTRY")
                .env_remove("ZEROBOX_REGISTRY_CA")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Staggered, so the serials arrive in order.
            std::thread::sleep(std::time::Duration::from_millis(40));
            child
        })
        .collect();
    let mut failures = Vec::new();
    for ch in children {
        let out = ch.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    let served = s.state.lock().unwrap().served.clone();
    assert_eq!(served.len(), RUNS, "{served:?} {failures:?}");
    // A run whose index is older than one another run already recorded is
    // refused as a rollback; nothing else may fail.
    assert!(
        failures.iter().all(|f| f.contains("rollback refused")),
        "{failures:?}"
    );
    assert_eq!(
        seen_serial(&c, &s.url),
        max,
        "highest serial lowered; served {served:?}"
    );
    // The cached index is the newest, with its own signature.
    let dir = c
        .env
        .cache_dir
        .join("registries")
        .join(registry::registry_key(&s.url));
    let ring = sign::KeyRing::single(&c.key.pub_text, "test").unwrap();
    let (_, serial) = sign::verify_index(
        &ring,
        std::fs::read(dir.join("index.yaml")).unwrap(),
        &std::fs::read(dir.join("index.yaml.minisig")).unwrap(),
        "cached index",
    )
    .unwrap();
    assert_eq!(serial, max);
}

/// A rollback state that cannot be parsed (or is a link) is refused, naming
/// the file and how to reset it; it is never read as "nothing seen".
#[test]
fn corrupt_rollback_state_is_refused_not_reset() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    let old_idx = std::fs::read(c.reg.join("index.yaml")).unwrap();
    let old_sig = std::fs::read(c.reg.join("index.yaml.minisig")).unwrap();
    c.publish("other", "1.0.0", "");
    preset::load("demo", &c.env).unwrap();
    let state = c.env.cache_dir.join("seen.json");
    std::fs::write(&state, b"{\"index\": garbage").unwrap();
    // an old index replayed while the state is corrupt: refused
    std::fs::write(c.reg.join("index.yaml"), &old_idx).unwrap();
    std::fs::write(c.reg.join("index.yaml.minisig"), &old_sig).unwrap();
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::State { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&state.display().to_string()) && msg.contains("rm "),
        "{msg}"
    );
    assert_eq!(e.exit_code(), 1);
    // a link in its place: refused too (never followed)
    std::fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink(c.root.join("elsewhere.json"), &state).unwrap();
    std::fs::write(c.root.join("elsewhere.json"), b"{}").unwrap();
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::State { .. }), "{e}");
    // reset as the message says: the current index is the new baseline
    std::fs::remove_file(&state).unwrap();
    assert!(preset::load("demo", &c.env).is_ok());
}

#[test]
fn preset_version_rollback_refused() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    c.publish("demo", "1.1.0", "");
    assert_eq!(
        preset::load("demo", &c.env).unwrap().version.to_string(),
        "1.1.0"
    );
    // a newer index (higher serial) that drops 1.1.0
    c.resign_index(|i| {
        i.presets.get_mut("demo").unwrap().remove("1.1.0");
    });
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Rollback { .. }), "{e}");
    assert!(e.to_string().contains("1.1.0"), "{e}");
}

#[test]
fn expired_index_warns_or_strict_refuses() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    c.resign_index(|i| i.expires = "2020-01-01T00:00:00Z".into());
    // default: used, with a warning
    assert!(preset::load("demo", &c.env).is_ok());
    let mut strict = c.env.clone();
    strict.strict = true;
    let e = err_of(preset::load("demo", &strict));
    assert!(matches!(e, PresetError::Expired { .. }), "{e}");
}

#[test]
fn oversized_and_garbage_responses_refused() {
    let (c, s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    s.state.lock().unwrap().special.insert(
        "index.yaml".into(),
        Special::Big(preset::MAX_INDEX_BYTES + 10),
    );
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::TooLarge { .. }), "{e}");
    s.state.lock().unwrap().special.clear();
    s.state.lock().unwrap().special.insert(
        "presets/demo/1.0.0.yaml".into(),
        Special::Big(preset::MAX_PRESET_BYTES + 1),
    );
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::TooLarge { .. }), "{e}");
    s.state.lock().unwrap().special.clear();
    // garbage index and signature
    std::fs::write(c.reg.join("index.yaml"), b"\x00\x01garbage").unwrap();
    std::fs::write(c.reg.join("index.yaml.minisig"), b"not a signature").unwrap();
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Signature { .. }), "{e}");
}

#[test]
fn path_traversal_names_refused() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    for bad in ["../demo", "demo/../x", "Demo", "-x", "a.b"] {
        let e = err_of(preset::load(bad, &c.env));
        assert!(
            matches!(
                e,
                PresetError::BadName { .. }
                    | PresetError::Untrusted { .. }
                    | PresetError::Io { .. }
            ),
            "{bad}: {e}"
        );
    }
    // an index naming a traversal path is refused as a whole
    c.resign_index(|i| {
        let v = i.presets["demo"].clone();
        i.presets.insert("../../etc".into(), v);
    });
    let e = err_of(preset::load("demo", &c.env));
    assert!(e.to_string().contains("path traversal"), "{e}");
}

#[test]
fn redirect_to_other_scheme_refused() {
    let (c, s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    let http = s.url.replace("https://", "http://");
    s.state.lock().unwrap().special.insert(
        "index.yaml".into(),
        Special::Redirect(format!("{http}/index.yaml")),
    );
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Registry { .. }), "{e}");
    assert!(e.to_string().contains("redirect"), "{e}");
}

#[test]
fn plain_http_registry_refused() {
    let c = ctx();
    c.use_registry("http://127.0.0.1:9/", None);
    let e = err_of(preset::load("claude", &c.env));
    assert!(e.to_string().contains("plain http is refused"), "{e}");
}

#[test]
fn publish_refuses_existing_version_and_invalid_files() {
    let c = ctx();
    c.publish("demo", "1.0.0", "");
    let f = c.root.join("demo-1.0.0.yaml");
    let e = registry::publish(&f, &c.reg, &c.key.sk_path, 30).unwrap_err();
    assert!(e.to_string().contains("already published"), "{e}");
    let bad = c.root.join("bad.yaml");
    std::fs::write(&bad, "zerobox: 1\nname: bad\nversion: one\n").unwrap();
    let e = registry::publish(&bad, &c.reg, &c.key.sk_path, 30).unwrap_err();
    assert!(e.to_string().contains(":3:10:"), "{e}");
    // a registry signed by another key is not silently re-signed
    let other = keypair(&c.root, "other");
    let f2 = c.root.join("x.yaml");
    std::fs::write(&f2, doc("x", "1.0.0", "")).unwrap();
    assert!(registry::publish(&f2, &c.reg, &other.sk_path, 30).is_err());
}

#[test]
fn extends_across_registry_and_cycles() {
    let c = ctx();
    c.use_registry(&c.file_url(), None);
    c.publish("base-a", "1.0.0", "extends: [protect-shell]\n");
    c.publish("top", "1.0.0", "extends: [base-a, system]\n");
    let p = preset::load("top", &c.env).unwrap();
    let origins: Vec<String> = p.layers.iter().map(|l| l.origin.to_string()).collect();
    // The bundled system preset, at the version its file declares.
    let system =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/presets/system.yaml"))
            .unwrap();
    let system = system
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .unwrap()
        .trim();
    assert_eq!(
        origins,
        [
            "protect-shell@1.0.0".to_string(),
            "base-a@1.0.0".into(),
            format!("system@{system}"),
            "top@1.0.0".into()
        ]
    );
    c.publish("cyc-a", "1.0.0", "extends: [cyc-b]\n");
    c.publish("cyc-b", "1.0.0", "extends: [cyc-c]\n");
    c.publish("cyc-c", "1.0.0", "extends: [cyc-a]\n");
    let e = err_of(preset::load("cyc-a", &c.env));
    assert!(matches!(e, PresetError::Cycle { .. }), "{e}");
    assert!(
        e.to_string().contains("cyc-a -> cyc-b -> cyc-c -> cyc-a"),
        "{e}"
    );
    c.publish("self", "1.0.0", "extends: [self]\n");
    assert!(matches!(
        err_of(preset::load("self", &c.env)),
        PresetError::Cycle { .. }
    ));
    c.publish("dangling", "1.0.0", "extends: [nope]\n");
    assert!(matches!(
        err_of(preset::load("dangling", &c.env)),
        PresetError::NotFound { .. }
    ));
}

fn write_pin(c: &Ctx, name: &str, version: &str, sha: &str, registry: &str, trust: bool) {
    let lock = c.env.project_dir.join(".zerobox/lock.yaml");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let text = format!(
        "zerobox-lock: 1\npins:\n  - name: {name}\n    version: \"{version}\"\n    registry: \"{registry}\"\n    sha256: {sha}\n    key: \"{}\"\n",
        sign::parse_public_key(&c.key.pub_text).unwrap().0
    );
    std::fs::write(&lock, &text).unwrap();
    if trust {
        sign::record_trust(
            &c.env,
            &std::fs::canonicalize(&lock).unwrap(),
            &preset_sha(text.as_bytes()),
        )
        .unwrap();
    }
}

#[test]
fn pins_exact_digest_or_error() {
    let (c, _s) = https_ctx();
    c.publish("demo", "1.0.0", "");
    c.publish("demo", "1.1.0", "");
    let sha10 = preset_sha(&std::fs::read(c.reg.join("presets/demo/1.0.0.yaml")).unwrap());
    let url = registry::registry_url(&c.env).unwrap().unwrap();
    // the pin wins over the newer registry version
    write_pin(&c, "demo", "1.0.0", &sha10, &url, true);
    assert_eq!(
        preset::load("demo", &c.env).unwrap().version.to_string(),
        "1.0.0"
    );
    // an untrusted lock file is an error, not ignored
    write_pin(&c, "demo", "1.0.0", &sha10, &url, false);
    std::fs::remove_dir_all(sign::trust_dir(&c.env)).unwrap();
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::Untrusted { .. }), "{e}");
    // a digest that nothing matches: error, never a fallback
    write_pin(&c, "demo", "1.0.0", &"cd".repeat(32), &url, true);
    let e = err_of(preset::load("demo", &c.env));
    assert!(matches!(e, PresetError::PinNotFound { .. }), "{e}");
    // bundled pins
    let claude =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/claude.yaml")).unwrap();
    let lock = c.env.project_dir.join(".zerobox/lock.yaml");
    let text = format!(
        "zerobox-lock: 1\npins:\n  - name: claude\n    version: \"1.0.0\"\n    registry: bundled\n    sha256: {}\n    key: \"94399AF7489A1798\"\n",
        preset_sha(&claude)
    );
    std::fs::write(&lock, &text).unwrap();
    sign::record_trust(
        &c.env,
        &std::fs::canonicalize(&lock).unwrap(),
        &preset_sha(text.as_bytes()),
    )
    .unwrap();
    // a lock file that pins claude but not its building blocks (as written
    // before pins covered the chain) is refused with the re-pin command
    let e = err_of(preset::load("claude", &c.env));
    assert!(matches!(e, PresetError::PinChain { .. }), "{e}");
    assert!(e.to_string().contains("zerobox preset pin claude"), "{e}");
}

/// Issue 8 #9: `zerobox preset pin app` pins app and every building block
/// in its chain; a later registry version of a building block is not
/// used, and a changed pinned building block is refused naming it.
#[test]
fn pin_covers_every_building_block_in_the_chain() {
    let c = ctx();
    c.use_registry(&c.file_url(), None);
    let publish = |name: &str, version: &str, body: &str| {
        let f = c.root.join(format!("{name}-{version}.yaml"));
        std::fs::write(
            &f,
            format!("zerobox: 1\nname: {name}\nversion: {version}\n{body}"),
        )
        .unwrap();
        registry::publish(&f, &c.reg, &c.key.sk_path, 30).unwrap();
    };
    publish("base", "1.0.0", "network:\n  allow: [base-one.example]\n");
    publish("mid", "1.0.0", "extends: [base]\n");
    publish(
        "app",
        "1.0.0",
        "command: app\nextends: [mid, protect-shell]\n",
    );
    let _g = process_env(&c);
    assert_eq!(preset::cli_main(args(&["pin", "app"])), 0);
    let lock = std::fs::read_to_string(c.env.project_dir.join(".zerobox/lock.yaml")).unwrap();
    for name in ["app", "mid", "base", "protect-shell"] {
        assert!(
            lock.contains(&format!("name: {name}\n")),
            "{name} not pinned:\n{lock}"
        );
    }
    assert!(lock.contains("registry: \"bundled\""), "{lock}");
    // base 1.1.0 widens; the pinned chain keeps 1.0.0
    publish("base", "1.1.0", "network:\n  allow: [base-two.example]\n");
    let p = preset::load("app", &c.env).unwrap();
    let origins: Vec<String> = p.layers.iter().map(|l| l.origin.to_string()).collect();
    assert!(origins.iter().any(|o| o == "base@1.0.0"), "{origins:?}");
    assert!(p
        .layers
        .iter()
        .all(|l| !l.net_allow.iter().any(|h| h == "base-two.example")));
    // a changed pinned building block (cache and registry) is refused, named
    let cached = c.env.cache_dir.join("presets/base/1.0.0.yaml");
    let regfile = c.reg.join("presets/base/1.0.0.yaml");
    for f in [&cached, &regfile] {
        let t = std::fs::read_to_string(f).unwrap();
        std::fs::write(f, t.replace("base-one", "evil")).unwrap();
    }
    let e = err_of(preset::load("app", &c.env));
    assert!(matches!(e, PresetError::PinNotFound { .. }), "{e}");
    assert!(e.to_string().contains("base@1.0.0"), "{e}");
}

/// A TCP listener on loopback that accepts and never answers, counting
/// connections (held open until the test ends).
struct Stall {
    url: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

fn stall() -> Stall {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", l.local_addr().unwrap().port());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    Stall { url, accepted }
}

fn zerobox_with(c: &Ctx, registry: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common_bin())
        .args(args)
        .current_dir(&c.env.project_dir)
        .env("HOME", &c.root)
        .env("XDG_CONFIG_HOME", c.root.join("config"))
        .env("XDG_CACHE_HOME", c.root.join("cache"))
        .env("XDG_DATA_HOME", c.root.join("data"))
        .env("ZEROBOX_REGISTRY", registry)
        .env("ZEROBOX_REGISTRY_TIMEOUT_MS", "400")
        .env_remove("ZEROBOX_REGISTRY_CA")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Issue 8 #11: a registry that accepts and never answers is asked once
/// per run. Its cached index names newer versions of two bundled building
/// blocks of `app`; before, each cost its own full timeout (three stalls);
/// now the first stall marks the registry down and the rest fall back to
/// the bundled copies at once. Counted in connections, not seconds.
#[test]
fn stalled_registry_is_asked_once_per_run() {
    let c = ctx();
    let s = stall();
    let publish = |name: &str, version: &str, body: &str| {
        let f = c.root.join(format!("{name}-{version}.yaml"));
        std::fs::write(
            &f,
            format!("zerobox: 1\nname: {name}\nversion: {version}\n{body}"),
        )
        .unwrap();
        registry::publish(&f, &c.reg, &c.key.sk_path, 30).unwrap();
    };
    publish("protect-shell", "99.0.0", "");
    publish("system", "99.0.0", "");
    publish(
        "app",
        "1.0.0",
        "command: app\nextends: [protect-shell, system]\n",
    );
    // The cache holds the index (as from an earlier run) and app itself.
    let cached = c
        .env
        .cache_dir
        .join("registries")
        .join(registry::registry_key(&s.url));
    std::fs::create_dir_all(&cached).unwrap();
    for f in ["index.yaml", "index.yaml.minisig"] {
        std::fs::copy(c.reg.join(f), cached.join(f)).unwrap();
    }
    let app = c.env.cache_dir.join("presets/app");
    std::fs::create_dir_all(&app).unwrap();
    for f in ["1.0.0.yaml", "1.0.0.yaml.minisig"] {
        std::fs::copy(c.reg.join("presets/app").join(f), app.join(f)).unwrap();
    }
    let out = zerobox_with(&c, &s.url, &["preset", "show", "app", "--resolved"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    // the bundled building blocks, not the unreachable 99.0.0
    assert!(
        stdout.contains("## protect-shell@") && !stdout.contains("@99.0.0"),
        "{stdout}"
    );
    assert_eq!(
        s.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{stderr}"
    );
}

/// Issue 8 #11: malformed registry URLs are refused (exit 2, naming the
/// value) before anything is looked up.
#[test]
fn malformed_registry_urls_are_refused_before_any_lookup() {
    let c = ctx();
    let s = stall();
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let bad = [
        "https://".to_string(),
        "https://:99999".to_string(),
        "https://:443/x".to_string(),
        format!("https://127.0.0.1:{port}99"),
        format!("https://user:secret@127.0.0.1:{port}/"),
        format!("https://127.0.0.1:{port}/?x=1"),
        format!("http://127.0.0.1:{port}/"),
        format!("ftp://127.0.0.1:{port}/"),
        "file://relative/dir".to_string(),
        "file://host/dir".to_string(),
        format!("https://127.0.0.1:{port}/ x"),
    ];
    for v in &bad {
        for args in [
            &["preset", "show", "claude"][..],
            &["preset", "list"],
            &["preset", "update"],
        ] {
            let out = zerobox_with(&c, v, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{v} {args:?}: {stderr}");
            assert!(
                stderr.contains("invalid registry URL") && stderr.contains(v.as_str()),
                "{v}: {stderr}"
            );
        }
    }
    // the same from config.yaml names the file
    std::fs::write(
        c.env.config_dir.join("config.yaml"),
        "registry: \"https://\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common_bin())
        .args(["preset", "show", "claude"])
        .current_dir(&c.env.project_dir)
        .env("XDG_CONFIG_HOME", c.root.join("config"))
        .env("XDG_CACHE_HOME", c.root.join("cache"))
        .env("XDG_DATA_HOME", c.root.join("data"))
        .env_remove("ZEROBOX_REGISTRY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config.yaml"), "{stderr}");
    // and from a pin in the lock file
    std::fs::remove_file(c.env.config_dir.join("config.yaml")).unwrap();
    let lock = c.env.project_dir.join(".zerobox/lock.yaml");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(
        &lock,
        format!(
            "zerobox-lock: 1\npins:\n  - name: claude\n    version: \"1.0.0\"\n    registry: \"https://user@127.0.0.1:{port}/\"\n    sha256: {}\n    key: \"94399AF7489A1798\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common_bin())
        .args(["preset", "show", "claude"])
        .current_dir(&c.env.project_dir)
        .env("XDG_CONFIG_HOME", c.root.join("config"))
        .env("XDG_CACHE_HOME", c.root.join("cache"))
        .env("XDG_DATA_HOME", c.root.join("data"))
        .env_remove("ZEROBOX_REGISTRY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lock.yaml") && stderr.contains("credentials"),
        "{stderr}"
    );
    assert_eq!(
        s.accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a malformed URL was looked up"
    );
}
