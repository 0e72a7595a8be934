//! `zerobox preset …` and `zerobox trust …`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::registry::{self, Resolver};
use super::schema::Preset;
use super::sign::{self, KeyRing};
use super::{project, sha256_hex, PresetEnv, PresetError};

const USAGE: &str = "usage: zerobox preset <command> [--strict] [--offline]
  list                                  bundled, cached and pinned presets
  show NAME|FILE [--resolved]           the preset file, or every layer with its origin
  schema                                JSON Schema of the preset format
  verify FILE                           check FILE.minisig against your trusted keys, then validate
  keygen [--out PREFIX]                 new signing key pair PREFIX.key / PREFIX.pub (default ./zerobox-preset)
  sign FILE --key KEY                   validate FILE and write FILE.minisig
  publish FILE --registry DIR --key KEY [--expires-days N]
  publish --refresh --registry DIR --key KEY [--expires-days N]
  pull NAME[@VERSION]                   download into the cache
  pin NAME[@VERSION]                    pin into .zerobox/lock.yaml (exact digest)
  update                                refresh the index and pull newer versions of cached presets
  trust-key KEY                         trust a public key (.pub file or its base64 line)";

struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: Vec<OsString>, with_value: &[&str]) -> Result<Self, PresetError> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let a = a
                .into_string()
                .map_err(|a| PresetError::Usage(format!("argument {a:?} is not UTF-8")))?;
            if let Some(flag) = a.strip_prefix("--") {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (flag.to_string(), None),
                };
                if with_value.contains(&name.as_str()) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .and_then(|v| v.into_string().ok())
                            .ok_or_else(|| PresetError::Usage(format!("--{name} needs a value")))?,
                    };
                    flags.push((name, Some(v)));
                } else {
                    flags.push((name, inline));
                }
            } else {
                positional.push(a);
            }
        }
        Ok(Args { positional, flags })
    }
    fn has(&self, f: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == f)
    }
    fn value(&self, f: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == f)
            .and_then(|(_, v)| v.as_deref())
    }
    fn only_flags(&self, allowed: &[&str]) -> Result<(), PresetError> {
        for (n, _) in &self.flags {
            if !allowed.contains(&n.as_str()) && !["strict", "offline"].contains(&n.as_str()) {
                return Err(PresetError::Usage(format!("unknown option --{n}\n{USAGE}")));
            }
        }
        Ok(())
    }
    fn one(&self, what: &str) -> Result<&str, PresetError> {
        match self.positional.as_slice() {
            [x] => Ok(x),
            _ => Err(PresetError::Usage(format!("expected one {what}\n{USAGE}"))),
        }
    }
}

fn system_env(args: &Args) -> Result<PresetEnv, PresetError> {
    let cwd = std::env::current_dir().map_err(|e| PresetError::io(Path::new("."), e))?;
    let mut env = PresetEnv::from_system(&cwd, args.has("strict"))?;
    env.offline |= args.has("offline");
    Ok(env)
}

fn report(r: Result<(), PresetError>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            crate::errln!("zerobox: {e}");
            e.exit_code()
        }
    }
}

/// `zerobox preset …` (args start after "preset"). Exit codes: 0 ok,
/// 1 verification or trust failure, 2 bad input or usage.
pub fn cli_main(args: Vec<OsString>) -> i32 {
    let mut args = args;
    if args.is_empty() {
        crate::errln!("{USAGE}");
        return 2;
    }
    let cmd = args.remove(0).to_string_lossy().into_owned();
    let parsed = match Args::parse(args, &["key", "registry", "out", "expires-days"]) {
        Ok(a) => a,
        Err(e) => return report(Err(e)),
    };
    report(run(&cmd, &parsed))
}

fn run(cmd: &str, a: &Args) -> Result<(), PresetError> {
    match cmd {
        "list" => {
            a.only_flags(&[])?;
            list(&system_env(a)?)
        }
        "show" => {
            a.only_flags(&["resolved"])?;
            show(
                a.one("preset name or file")?,
                a.has("resolved"),
                &system_env(a)?,
            )
        }
        "schema" => {
            a.only_flags(&[])?;
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&super::json_schema()).unwrap_or_default()
            );
            Ok(())
        }
        "verify" => {
            a.only_flags(&[])?;
            let file = PathBuf::from(a.one("file")?);
            let env = system_env(a)?;
            let ring = KeyRing::load(&env)?;
            let sig = sign::sig_path_of(&file);
            if !sig.exists() {
                return Err(PresetError::Signature {
                    file: file.display().to_string(),
                    reason: format!(
                        "no signature {} found; sign it with `zerobox preset sign`",
                        sig.display()
                    ),
                });
            }
            let v = sign::verify_local(&ring, &env, &file)?;
            let p = super::schema::parse_preset(&v)?;
            crate::outln!(
                "ok: {}@{} signed by key {} (sha256 {})",
                p.name,
                p.version,
                v.key_id().unwrap_or("-"),
                p.sha256
            );
            Ok(())
        }
        "keygen" => {
            a.only_flags(&["out"])?;
            if !a.positional.is_empty() {
                return Err(PresetError::Usage(USAGE.into()));
            }
            let prefix = a.value("out").unwrap_or("zerobox-preset");
            let (skp, pkp) = (
                PathBuf::from(format!("{prefix}.key")),
                PathBuf::from(format!("{prefix}.pub")),
            );
            if skp.exists() || pkp.exists() {
                return Err(PresetError::Usage(format!(
                    "{} or {} already exists; choose another --out PREFIX",
                    skp.display(),
                    pkp.display()
                )));
            }
            let (sk, pk, id) = sign::keygen()?;
            write_secret(&skp, sk.as_bytes())?;
            super::write_atomic(&pkp, pk.as_bytes())?;
            crate::outln!(
                "key {id}: secret {} (keep it private), public {}",
                skp.display(),
                pkp.display()
            );
            crate::outln!(
                "users trust it with: zerobox preset trust-key {}",
                pkp.display()
            );
            Ok(())
        }
        "sign" => {
            a.only_flags(&["key"])?;
            let file = PathBuf::from(a.one("file")?);
            let key = a
                .value("key")
                .ok_or_else(|| PresetError::Usage("sign needs --key KEY".into()))?;
            let sk = sign::load_secret_key(Path::new(key))?;
            let bytes = super::read_capped(&file, super::MAX_PRESET_BYTES)?;
            let (sig, p) = sign::sign_preset(&sk, &bytes, &file.display().to_string())?;
            super::write_atomic(&sign::sig_path_of(&file), sig.as_bytes())?;
            crate::outln!(
                "signed {}@{} -> {}",
                p.name,
                p.version,
                sign::sig_path_of(&file).display()
            );
            Ok(())
        }
        "publish" => {
            a.only_flags(&["registry", "key", "expires-days", "refresh"])?;
            let reg = a
                .value("registry")
                .ok_or_else(|| PresetError::Usage("publish needs --registry DIR".into()))?;
            let key = a
                .value("key")
                .ok_or_else(|| PresetError::Usage("publish needs --key KEY".into()))?;
            let days: u64 = match a.value("expires-days") {
                Some(d) => d
                    .parse()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or_else(|| {
                        PresetError::Usage(format!("--expires-days {d:?}: expected 1..3650"))
                    })?,
                None => 90,
            };
            if a.has("refresh") {
                let serial = registry::refresh_index(Path::new(reg), Path::new(key), days)?;
                crate::outln!("re-signed {}/index.yaml (serial {serial})", reg);
                return Ok(());
            }
            let file = a.one("file")?;
            let (n, v, serial) =
                registry::publish(Path::new(file), Path::new(reg), Path::new(key), days)?;
            crate::outln!("published {n}@{v} to {reg} (index serial {serial})");
            Ok(())
        }
        "pull" | "pin" => {
            a.only_flags(&[])?;
            let spec = a.one("NAME[@VERSION]")?;
            let env = system_env(a)?;
            let (name, version) = split_spec(spec)?;
            // A fresh resolution: the lock file being rewritten does not
            // decide what goes into it.
            let mut r = Resolver::ignoring_pins(&env);
            let (p, url) = pick(&mut r, &env, &name, version.as_ref(), cmd == "pull")?;
            if cmd == "pull" {
                crate::outln!("pulled {} (sha256 {}) from {}", p.origin(), p.sha256, url);
                return Ok(());
            }
            // Pin the preset and every building block it extends: a pin
            // that covered only the named preset would let a changed
            // building block through.
            let chain = super::chain_of(&mut r, &p)?;
            let mut lock = project::read_lock(&env.project_dir)?.unwrap_or(project::LockFile {
                schema: 1,
                pins: vec![],
            });
            let registry = registry::registry_url(&env)?;
            for q in &chain {
                let key = r.key_id_of(q)?;
                let from = if q.name == p.name {
                    url.clone()
                } else if q.source == "bundled" {
                    "bundled".to_string()
                } else {
                    registry.clone().unwrap_or_else(|| url.clone())
                };
                lock.pins.retain(|x| x.name != q.name);
                lock.pins.push(project::Pin {
                    name: q.name.clone(),
                    version: q.version.to_string(),
                    registry: from,
                    sha256: q.sha256.clone(),
                    key,
                });
            }
            lock.pins.sort_by(|x, y| x.name.cmp(&y.name));
            let path = project::write_lock(&env, &lock)?;
            for q in &chain {
                let role = if q.name == p.name {
                    ""
                } else {
                    " (building block)"
                };
                crate::outln!(
                    "pinned {}{role} (sha256 {}) in {}",
                    q.origin(),
                    q.sha256,
                    path.display()
                );
            }
            Ok(())
        }
        "update" => {
            a.only_flags(&[])?;
            let env = system_env(a)?;
            if env.offline {
                return Err(PresetError::Usage(
                    "update needs the network; drop --offline".into(),
                ));
            }
            let mut r = Resolver::new(&env);
            let Some((idx, url)) = r.index()? else {
                return Err(PresetError::Usage(
                    "no registry configured: set `registry: URL` in ~/.config/zerobox/config.yaml or ZEROBOX_REGISTRY".into(),
                ));
            };
            crate::outln!(
                "index {url}: serial {}, expires {}",
                idx.serial,
                idx.expires
            );
            let cached: Vec<String> = std::fs::read_dir(env.cache_dir.join("presets"))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for name in cached {
                if let Some((v, sha)) = idx.latest(&name) {
                    let p = r.fetch_version(&url, &name, &v, &sha)?;
                    crate::outln!("  {} up to date", p.origin());
                }
            }
            Ok(())
        }
        "trust-key" => {
            a.only_flags(&[])?;
            let arg = a.one("public key (file or base64)")?;
            let env = system_env(a)?;
            let text = if Path::new(arg).is_file() {
                String::from_utf8_lossy(&super::read_capped(Path::new(arg), 4096)?).into_owned()
            } else {
                arg.to_string()
            };
            let (id, b64) = sign::parse_public_key(&text).map_err(|m| {
                PresetError::Usage(format!(
                    "{arg:?}: {m}; expected a minisign .pub file or its base64 line"
                ))
            })?;
            let dest = env.config_dir.join("keys").join(format!("{id}.pub"));
            super::write_atomic(
                &dest,
                format!("untrusted comment: zerobox trusted key {id}\n{b64}\n").as_bytes(),
            )?;
            crate::outln!("trusted key {id} ({})", dest.display());
            Ok(())
        }
        "help" | "--help" | "-h" => {
            crate::outln!("{USAGE}");
            Ok(())
        }
        other => Err(PresetError::Usage(format!(
            "unknown preset command {other:?}\n{USAGE}"
        ))),
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), PresetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PresetError::io(path, e))?;
    f.write_all(bytes).map_err(|e| PresetError::io(path, e))
}

fn split_spec(spec: &str) -> Result<(String, Option<semver::Version>), PresetError> {
    let (name, ver) = match spec.split_once('@') {
        Some((n, v)) => (
            n,
            Some(semver::Version::parse(v).map_err(|e| {
                PresetError::Usage(format!("{spec:?}: bad version ({e}); expected NAME@1.2.3"))
            })?),
        ),
        None => (spec, None),
    };
    super::check_name(name)?;
    Ok((name.to_string(), ver))
}

/// The preset for pull/pin: from the registry (exact or latest version),
/// else bundled when no registry is configured (pin only).
fn pick(
    r: &mut Resolver,
    env: &PresetEnv,
    name: &str,
    version: Option<&semver::Version>,
    need_registry: bool,
) -> Result<(Preset, String), PresetError> {
    if let Some((idx, url)) = r.index()? {
        let entry = match version {
            Some(v) => idx
                .presets
                .get(name)
                .and_then(|vs| vs.get(&v.to_string()))
                .map(|e| (v.clone(), e.sha256.clone())),
            None => idx.latest(name),
        };
        if let Some((v, sha)) = entry {
            return Ok((r.fetch_version(&url, name, &v, &sha)?, url));
        }
        if need_registry {
            return Err(PresetError::NotFound {
                name: format!(
                    "{name}{}",
                    version.map(|v| format!("@{v}")).unwrap_or_default()
                ),
                hint: format!(" in registry {url}"),
            });
        }
    } else if need_registry {
        return Err(PresetError::Usage(
            "no registry configured: set `registry: URL` in ~/.config/zerobox/config.yaml or ZEROBOX_REGISTRY".into(),
        ));
    }
    let _ = env;
    match r.bundled(name)? {
        Some(p) if version.is_none_or(|v| *v == p.version) => Ok((p, "bundled".into())),
        _ => Err(PresetError::NotFound {
            name: name.into(),
            hint: " among the bundled presets (configure a registry for other versions)".into(),
        }),
    }
}

fn list(env: &PresetEnv) -> Result<(), PresetError> {
    let mut r = Resolver::new(env);
    crate::outln!(
        "{:<24} {:<10} {:<10} DESCRIPTION",
        "NAME",
        "VERSION",
        "SOURCE"
    );
    for b in super::bundled::BUNDLED {
        match r.bundled(b.name) {
            Ok(Some(p)) => crate::outln!(
                "{:<24} {:<10} {:<10} {}",
                p.name,
                p.version,
                "bundled",
                p.doc.description.as_deref().unwrap_or("")
            ),
            Ok(None) => {}
            Err(e) => crate::outln!("{:<24} {:<10} {:<10} INVALID: {e}", b.name, "-", "bundled"),
        }
    }
    let idx = if env.offline {
        None
    } else {
        match r.index() {
            Ok(i) => i,
            // A malformed registry setting is the user's to fix, not a
            // registry being away.
            Err(e @ PresetError::Usage(_)) => return Err(e),
            Err(e) => {
                crate::errln!("zerobox: warning: {e}");
                None
            }
        }
    };
    if let Some((idx, url)) = idx {
        for (name, versions) in &idx.presets {
            let mut vs: Vec<&String> = versions.keys().collect();
            vs.sort_by_key(|v| semver::Version::parse(v).ok());
            crate::outln!(
                "{:<24} {:<10} {:<10} {}",
                name,
                vs.last().map(|s| s.as_str()).unwrap_or("-"),
                "registry",
                url
            );
        }
    }
    if let Ok(Some(lock)) = project::read_lock(&env.project_dir) {
        for p in lock.pins {
            crate::outln!(
                "{:<24} {:<10} {:<10} sha256 {}",
                p.name,
                p.version,
                "pinned",
                p.sha256
            );
        }
    }
    Ok(())
}

fn show(what: &str, resolved: bool, env: &PresetEnv) -> Result<(), PresetError> {
    if resolved {
        let lp = super::load(what, env)?;
        crate::outln!(
            "# {}@{} (command: {})",
            lp.name,
            lp.version,
            if lp.command.is_empty() {
                "-"
            } else {
                &lp.command
            }
        );
        for l in &lp.layers {
            crate::outln!("\n## {}", l.origin);
            let groups: [(&str, &Vec<String>); 9] = [
                ("filesystem.read.allow", &l.read_allow),
                ("filesystem.read.deny", &l.read_deny),
                ("filesystem.write.allow", &l.write_allow),
                ("filesystem.write.deny", &l.write_deny),
                ("network.allow", &l.net_allow),
                ("network.deny", &l.net_deny),
                ("env.allow", &l.env_allow),
                ("env.deny", &l.env_deny),
                ("unix_sockets", &l.unix_sockets),
            ];
            for (k, v) in groups {
                if !v.is_empty() {
                    crate::outln!("{k}: {}", v.join(", "));
                }
            }
            if l.net_allow_any {
                crate::outln!("network.allow: * (any host)");
            }
            for (k, v) in &l.env_set {
                crate::outln!("env.set: {k}={v}");
            }
            for s in &l.secrets {
                crate::outln!("secret: {} -> {}", s.name, s.hosts.join(", "));
            }
        }
        return Ok(());
    }
    let mut r = Resolver::new(env);
    let p = if super::is_file_arg(what) {
        r.load_file(Path::new(what))?
    } else {
        r.load_named(what)?
    };
    crate::outln!("# {} from {} (sha256 {})", p.origin(), p.source, p.sha256);
    let bytes = if p.source == "bundled" {
        super::bundled::find(&p.name)
            .map(|b| b.yaml.to_vec())
            .unwrap_or_default()
    } else if super::is_file_arg(what) {
        std::fs::read(what).unwrap_or_default()
    } else {
        std::fs::read(registry::cached_preset_path(
            env,
            &p.name,
            &p.version.to_string(),
        ))
        .unwrap_or_default()
    };
    crate::out!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}

/// `zerobox trust [FILE…] [--yes]`: trust the exact content of a project
/// file (`.zerobox/lock.yaml`, `.zerobox/overrides/NAME.yaml`) or an
/// unsigned local preset file, for this project and this path only.
/// Without FILE: every file under the project's `.zerobox/`. Shows what each
/// file widens, then asks on a terminal; `--yes` confirms for scripts, and
/// without a terminal and without `--yes` nothing is trusted (exit 2).
pub fn trust_main(args: Vec<OsString>) -> i32 {
    report((|| {
        let a = Args::parse(args, &[])?;
        a.only_flags(&["yes"])?;
        let env = system_env(&a)?;
        let files: Vec<PathBuf> = match a.positional.as_slice() {
            [] => {
                let dir = env.project_dir.join(".zerobox");
                let mut v = vec![];
                let lock = project::lock_path(&env.project_dir);
                if super::present(&lock)? {
                    v.push(lock);
                }
                let ov_dir = dir.join("overrides");
                if super::present(&ov_dir)? {
                    let rd = std::fs::read_dir(&ov_dir).map_err(|e| PresetError::Unreadable {
                        path: ov_dir.display().to_string(),
                        source: e,
                    })?;
                    let mut o: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                    o.sort();
                    v.extend(o);
                }
                if v.is_empty() {
                    return Err(PresetError::Usage(format!(
                        "nothing to trust: no {} found",
                        dir.display()
                    )));
                }
                v
            }
            files => files.iter().map(PathBuf::from).collect(),
        };
        // Review everything first: a file that does not parse is refused
        // before anything is trusted.
        let mut reviewed = Vec::new();
        for f in files {
            let rf = super::read_real(&f, super::MAX_PRESET_BYTES)?;
            let sha = sha256_hex(&rf.bytes);
            let what = review(&f, &rf.bytes)?;
            reviewed.push((f, rf.real, sha, what));
        }
        let root = std::fs::canonicalize(&env.project_dir).unwrap_or(env.project_dir.clone());
        for (f, _, sha, what) in &reviewed {
            crate::outln!(
                "{} (sha256 {sha}), for project {}:",
                f.display(),
                root.display()
            );
            for line in what {
                crate::outln!("  {line}");
            }
        }
        if !a.has("yes") {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                return Err(PresetError::Usage(
                    "zerobox trust asks for confirmation on a terminal and stdin is none; review the files above and pass --yes to trust them from a script".into(),
                ));
            }
            crate::err_prompt!(
                "trust {} for this project? [y/N] ",
                if reviewed.len() == 1 {
                    "this file"
                } else {
                    "these files"
                }
            );
            let mut answer = String::new();
            std::io::stdin()
                .read_line(&mut answer)
                .map_err(|e| PresetError::io(Path::new("stdin"), e))?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                return Err(PresetError::Untrusted {
                    file: reviewed
                        .iter()
                        .map(|(f, ..)| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    message: "not trusted (you did not answer y)".into(),
                });
            }
        }
        for (f, real, sha, _) in &reviewed {
            sign::record_trust(&env, real, sha)?;
            crate::outln!("trusted {} (sha256 {sha})", f.display());
        }
        Ok(())
    })())
}

/// What trusting `file` would let it do, one line each; an error when it
/// does not parse (nothing is trusted that zerobox cannot read).
fn review(f: &Path, bytes: &[u8]) -> Result<Vec<String>, PresetError> {
    let file = f.display().to_string();
    let name = f
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_overrides = f
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "overrides");
    if name == "lock.yaml" {
        let lock: project::LockFile = super::yaml::parse(bytes, &file)?;
        let mut out: Vec<String> = lock
            .pins
            .iter()
            .map(|p| {
                format!(
                    "pins {}@{} (sha256 {}, key {}) from {}",
                    p.name, p.version, p.sha256, p.key, p.registry
                )
            })
            .collect();
        if out.is_empty() {
            out.push("pins nothing".into());
        }
        return Ok(out);
    }
    let doc = if in_overrides {
        super::schema::parse_override(bytes, &file)?
    } else {
        // An unsigned local preset: parsed for review only; it is verified
        // (by this trust) when it is loaded.
        super::yaml::parse::<super::schema::PresetDoc>(bytes, &file)?
    };
    let mut out: Vec<String> = doc
        .widening_entries()
        .into_iter()
        .map(|w| format!("widens: {w}"))
        .collect();
    if !in_overrides {
        if let Some(c) = &doc.command {
            out.insert(0, format!("runs: {}", c.value));
        }
    }
    if out.is_empty() {
        out.push("only narrows (deny entries); it applies without trust too".into());
    }
    Ok(out)
}
