//! The preset format (schema version 1): types, validation, JSON Schema, and
//! the mapping to a [`PolicyLayer`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::sign::VerifiedBytes;
use super::{valid_name, yaml, PresetError};
use crate::policy::{
    env_name_ok, env_pattern_ok, HostPattern, Origin, PolicyLayer, Portless, SecretSource,
    SecretSpec,
};

/// The schema version this zerobox reads.
pub const SCHEMA_VERSION: u32 = 1;

type S = Spanned<String>;

/// One preset or override document as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetDoc {
    #[serde(default)]
    pub zerobox: Option<Spanned<u32>>,
    #[serde(default)]
    pub name: Option<S>,
    #[serde(default)]
    pub version: Option<S>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub command: Option<S>,
    /// Arguments put between `command` and the user's arguments (e.g. a
    /// flag that keeps the agent off host state the sandbox must not
    /// share). Only in a signed preset, never in an override.
    #[serde(default)]
    pub args: Vec<S>,
    #[serde(default)]
    pub extends: Vec<S>,
    #[serde(default)]
    pub platforms: Vec<S>,
    #[serde(default)]
    pub filesystem: Filesystem,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub env: Env,
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    #[serde(default)]
    pub unix_sockets: Vec<S>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// `deny`: reads not granted here are denied (a complete profile, as
    /// `--build-profile` writes); `allow` (the default): the usual view.
    #[serde(default)]
    pub read_default: Option<S>,
    #[serde(default)]
    pub read: Rules,
    #[serde(default)]
    pub write: Rules,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub allow: Vec<S>,
    #[serde(default)]
    pub deny: Vec<S>,
}

/// `network:`: hosts allowed and denied, and the optional hosts refused
/// quietly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub allow: Vec<S>,
    #[serde(default)]
    pub deny: Vec<S>,
    /// Hosts the preset knows are optional (an agent's updater, telemetry,
    /// error reporting): still refused unless allowed, but left out of the
    /// end-of-run "blocked" line. Never allows anything; an allow wins.
    #[serde(default)]
    pub quiet: Vec<S>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Env {
    #[serde(default)]
    pub allow: Vec<S>,
    #[serde(default)]
    pub deny: Vec<S>,
    #[serde(default)]
    pub set: BTreeMap<String, S>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    #[serde(default)]
    pub hosts: Vec<S>,
    #[serde(default)]
    pub from: Option<S>,
}

/// A validated preset (name and version present and well formed).
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: String,
    pub version: semver::Version,
    pub doc: PresetDoc,
    /// Where the bytes came from (`bundled`, `cache`, a URL, a file).
    pub source: String,
    pub sha256: String,
}

impl Preset {
    /// Its layers' origin, `NAME@VERSION`.
    pub fn origin(&self) -> Origin {
        Origin::preset(&self.name, &self.version)
    }
}

fn at(file: &str, s: &Spanned<impl Sized>, message: String) -> PresetError {
    PresetError::Invalid {
        file: file.to_string(),
        line: s.referenced.line(),
        column: s.referenced.column(),
        message,
    }
}

/// Parse and validate verified preset bytes. The signed trusted comment's
/// name and version must match the document's.
pub fn parse_preset(v: &VerifiedBytes) -> Result<Preset, PresetError> {
    let file = v.file();
    let doc: PresetDoc = yaml::parse(v.bytes(), file)?;
    let missing = |key: &str, form: &str| PresetError::InvalidFile {
        file: file.to_string(),
        message: format!("missing key `{key}` (expected {form})"),
    };
    let schema = doc
        .zerobox
        .as_ref()
        .ok_or_else(|| missing("zerobox", "`zerobox: 1`"))?;
    if schema.value != SCHEMA_VERSION {
        return Err(at(
            file,
            schema,
            format!(
                "schema version {} is not supported (this zerobox reads `zerobox: {SCHEMA_VERSION}`); upgrade zerobox",
                schema.value
            ),
        ));
    }
    let name = doc
        .name
        .as_ref()
        .ok_or_else(|| missing("name", "`name: my-preset`"))?;
    if !valid_name(&name.value) {
        return Err(at(
            file,
            name,
            format!(
                "invalid name {:?}: expected ^[a-z0-9][a-z0-9-]{{0,63}}$",
                name.value
            ),
        ));
    }
    let version_s = doc
        .version
        .as_ref()
        .ok_or_else(|| missing("version", "`version: \"1.0.0\"` (semver)"))?;
    let version = semver::Version::parse(&version_s.value).map_err(|e| {
        at(
            file,
            version_s,
            format!(
                "invalid version {:?}: {e}; expected semver like \"1.2.3\"",
                version_s.value
            ),
        )
    })?;
    if let Some(cmd) = &doc.command {
        let c = &cmd.value;
        if c.is_empty()
            || c.contains('/')
            || c.chars().any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(at(
                file,
                cmd,
                format!("invalid command {c:?}: expected a program name found on PATH (no '/', no spaces)"),
            ));
        }
    }
    if !doc.args.is_empty() && doc.command.is_none() {
        return Err(at(
            file,
            &doc.args[0],
            "`args` without a `command`: they are given to the preset's command; add `command` or remove `args`".to_string(),
        ));
    }
    for a in &doc.args {
        if a.value.chars().any(|ch| ch.is_control()) {
            return Err(at(
                file,
                a,
                format!("invalid argument {:?}: no control characters", a.value),
            ));
        }
    }
    validate_body(&doc, file)?;
    if let Some((cn, cv)) = v.signed_name_version() {
        if cn != name.value || cv != version.to_string() {
            return Err(PresetError::Signature {
                file: file.to_string(),
                reason: format!(
                    "the signature is for {cn}@{cv} but the file declares {}@{version} (mix-and-match refused)",
                    name.value
                ),
            });
        }
    }
    Ok(Preset {
        name: name.value.clone(),
        version,
        doc,
        source: v.source().to_string(),
        sha256: v.sha256().to_string(),
    })
}

/// Parse and validate an override file (same schema; no name, version or
/// command).
pub fn parse_override(bytes: &[u8], file: &str) -> Result<PresetDoc, PresetError> {
    let doc: PresetDoc = yaml::parse(bytes, file)?;
    for (key, s) in [
        ("name", &doc.name),
        ("version", &doc.version),
        ("command", &doc.command),
    ] {
        if let Some(s) = s {
            return Err(at(
                file,
                s,
                format!("`{key}` is not allowed in an override file (it always applies to the preset named by the file name); remove it"),
            ));
        }
    }
    if let Some(a) = doc.args.first() {
        return Err(at(
            file,
            a,
            "`args` is not allowed in an override file (only the signed preset gives its command arguments); remove it".to_string(),
        ));
    }
    check_schema_version(&doc, file)?;
    validate_body(&doc, file)?;
    Ok(doc)
}

/// `zerobox: 1`, when the document says which schema it uses.
fn check_schema_version(doc: &PresetDoc, file: &str) -> Result<(), PresetError> {
    if let Some(z) = &doc.zerobox {
        if z.value != SCHEMA_VERSION {
            return Err(at(
                file,
                z,
                format!(
                    "schema version {} is not supported; expected `zerobox: {SCHEMA_VERSION}`",
                    z.value
                ),
            ));
        }
    }
    Ok(())
}

/// Parse and validate a profile document (`--build-profile`, `learn`): the
/// preset schema with name and version optional (the writer always puts
/// them), for reading entries back. Loading it for a run still goes
/// through [`parse_preset`] and its trust check.
pub fn parse_profile_doc(bytes: &[u8], file: &str) -> Result<PresetDoc, PresetError> {
    let doc: PresetDoc = yaml::parse(bytes, file)?;
    check_schema_version(&doc, file)?;
    validate_body(&doc, file)?;
    Ok(doc)
}

fn validate_body(doc: &PresetDoc, file: &str) -> Result<(), PresetError> {
    for e in &doc.extends {
        if !valid_name(&e.value) {
            return Err(at(
                file,
                e,
                format!(
                    "invalid preset name {:?} in extends: expected ^[a-z0-9][a-z0-9-]{{0,63}}$",
                    e.value
                ),
            ));
        }
    }
    for p in &doc.platforms {
        if !matches!(p.value.as_str(), "linux" | "macos") {
            return Err(at(
                file,
                p,
                format!(
                    "unknown platform {:?}: expected `linux` or `macos`",
                    p.value
                ),
            ));
        }
    }
    let fs = &doc.filesystem;
    if let Some(d) = &fs.read_default {
        if !matches!(d.value.as_str(), "allow" | "deny") {
            return Err(at(
                file,
                d,
                format!(
                    "invalid read_default {:?}: expected `allow` or `deny`",
                    d.value
                ),
            ));
        }
    }
    for (list, glob_ok) in [
        (&fs.read.allow, false),
        (&fs.read.deny, true),
        (&fs.write.allow, false),
        (&fs.write.deny, false),
        (&doc.unix_sockets, false),
    ] {
        for p in list {
            check_path(file, p, glob_ok)?;
        }
    }
    for h in &doc.network.allow {
        check_host(file, h, true)?;
    }
    for h in &doc.network.deny {
        check_host(file, h, false)?;
    }
    for h in &doc.network.quiet {
        // The same grammar as `allow`, without `*`: silencing every
        // refusal would hide what the command tried.
        if h.value == "*" {
            return Err(at(
                file,
                h,
                "network.quiet may not be `*` (it would hide every refused connection); name the optional hosts".into(),
            ));
        }
        check_host(file, h, true)?;
    }
    for e in doc.env.allow.iter().chain(&doc.env.deny) {
        if !env_pattern_ok(&e.value) {
            return Err(at(file, e, format!("invalid environment pattern {:?}: expected NAME or PREFIX* (letters, digits, _)", e.value)));
        }
    }
    for (k, v) in &doc.env.set {
        if !env_name_ok(k) {
            return Err(at(file, v, format!("invalid environment variable name {k:?} in env.set: expected NAME (letters, digits, _)")));
        }
    }
    for (name, s) in &doc.secrets {
        let anchor = s.hosts.first().or(s.from.as_ref());
        let err = |msg: String| match anchor {
            Some(a) => at(file, a, msg),
            None => PresetError::InvalidFile {
                file: file.to_string(),
                message: msg,
            },
        };
        if !env_name_ok(name) {
            return Err(err(format!(
                "invalid secret name {name:?}: expected an environment variable NAME"
            )));
        }
        if s.hosts.is_empty() {
            return Err(err(format!(
                "secret {name} has no hosts: bind it, e.g. `hosts: [api.example.com]`"
            )));
        }
        for h in &s.hosts {
            check_host(file, h, false)?;
        }
        if let Some(from) = &s.from {
            let f = &from.value;
            if let SecretSource::File(path) =
                SecretSource::parse(f).map_err(|m| at(file, from, m))?
            {
                check_path_str(&path)
                    .map_err(|m| at(file, from, format!("invalid secret file {f:?}: {m}")))?;
            }
        }
    }
    Ok(())
}

fn check_path(file: &str, p: &S, glob_ok: bool) -> Result<(), PresetError> {
    check_path_str(&p.value)
        .map_err(|m| at(file, p, format!("invalid path {:?}: {m}", p.value)))?;
    let last_glob = p.value.rsplit('/').next().is_some_and(|l| l.contains('*'));
    let parent_glob = p
        .value
        .rsplit_once('/')
        .is_some_and(|(a, _)| a.contains('*'));
    if parent_glob || (last_glob && !glob_ok) {
        return Err(at(
            file,
            p,
            format!("invalid path {:?}: `*` is only allowed in the last component of a filesystem.read.deny path", p.value),
        ));
    }
    Ok(())
}

/// Paths: `policy::paths::check_syntax`, the grammar flags use too.
fn check_path_str(v: &str) -> Result<(), String> {
    crate::policy::paths::check_syntax(v)
}

/// A host pattern, in the grammar every policy source shares
/// (`policy::net`: `host`, `host:port`, `host:*`, `*.domain`, an address
/// or CIDR); `*` (any host) only where `any_ok` (network.allow).
fn check_host(file: &str, h: &S, any_ok: bool) -> Result<(), PresetError> {
    let v = &h.value;
    if v.trim() == "*" {
        return if any_ok {
            Ok(())
        } else {
            Err(at(
                file,
                h,
                "`*` (every host) is only allowed in network.allow; a secret never goes to every host: name its API host".into(),
            ))
        };
    }
    HostPattern::parse(v, Portless::Web)
        .map(|_| ())
        .map_err(|e| at(file, h, e.to_string()))
}

impl PresetDoc {
    /// This document as one policy layer.
    pub fn to_layer(&self, origin: Origin) -> PolicyLayer {
        let v = |l: &[S]| l.iter().map(|s| s.value.clone()).collect::<Vec<_>>();
        let mut layer = PolicyLayer::new(origin);
        layer.read_allow = v(&self.filesystem.read.allow);
        layer.read_deny = v(&self.filesystem.read.deny);
        layer.write_allow = v(&self.filesystem.write.allow);
        layer.write_deny = v(&self.filesystem.write.deny);
        layer.read_default_deny = self
            .filesystem
            .read_default
            .as_ref()
            .is_some_and(|d| d.value == "deny");
        layer.env_allow = v(&self.env.allow);
        layer.env_deny = v(&self.env.deny);
        layer.env_set = self
            .env
            .set
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        for h in &self.network.allow {
            if h.value == "*" {
                layer.net_allow_any = true;
            } else {
                layer.net_allow.push(h.value.clone());
            }
        }
        layer.net_deny = v(&self.network.deny);
        layer.net_quiet = v(&self.network.quiet);
        layer.unix_sockets = v(&self.unix_sockets);
        layer.secrets = self
            .secrets
            .iter()
            .map(|(name, s)| SecretSpec {
                name: name.clone(),
                // Checked by `validate_body` (both parsers run it before a
                // document exists); a bad one is dropped, never guessed.
                from: s
                    .from
                    .as_ref()
                    .and_then(|f| SecretSource::parse(&f.value).ok()),
                hosts: v(&s.hosts),
            })
            .collect();
        layer
    }

    /// Entries that would widen a policy (everything but denies), each
    /// named `key: value` for the error message.
    pub fn widening_entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |key: &str, l: &[S]| {
            out.extend(
                l.iter()
                    .map(|s| format!("{key}: {} (line {})", s.value, s.referenced.line())),
            )
        };
        add("extends", &self.extends);
        add("filesystem.read.allow", &self.filesystem.read.allow);
        add("filesystem.write.allow", &self.filesystem.write.allow);
        add("network.allow", &self.network.allow);
        // Not a grant, but it hides refusals from the user: an untrusted
        // project file may not silence what the command tries.
        add("network.quiet", &self.network.quiet);
        add("env.allow", &self.env.allow);
        add("unix_sockets", &self.unix_sockets);
        for (k, s) in &self.env.set {
            out.push(format!("env.set: {k} (line {})", s.referenced.line()));
        }
        for k in self.secrets.keys() {
            out.push(format!("secrets: {k}"));
        }
        out
    }
}

/// The JSON Schema (draft 2020-12) of a preset document.
pub fn json_schema() -> serde_json::Value {
    use serde_json::json;
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let rules = json!({
        "type": "object", "additionalProperties": false,
        "properties": {"allow": strings, "deny": strings}
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://zerobox.dev/schema/preset-1.json",
        "title": "zerobox preset (schema version 1)",
        "type": "object",
        "additionalProperties": false,
        "required": ["zerobox", "name", "version"],
        "properties": {
            "zerobox": {"const": SCHEMA_VERSION, "description": "schema version"},
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
            "version": {"type": "string", "description": "semver, e.g. 1.2.3",
                        "pattern": "^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?$"},
            "description": {"type": "string"},
            "command": {"type": "string", "pattern": "^[^/\\s]+$", "description": "program found on PATH; user args are appended"},
            "args": {"type": "array", "items": {"type": "string"}, "description": "arguments given to the command before the user's (presets only, not overrides)"},
            "extends": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}},
            "platforms": {"type": "array", "items": {"enum": ["linux", "macos"]}},
            "filesystem": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "read_default": {"enum": ["allow", "deny"], "description": "deny: reads not granted are denied (a complete profile)"},
                    "read": rules, "write": rules
                }
            },
            "network": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "allow": strings, "deny": strings,
                    "quiet": {"type": "array", "items": {"type": "string"},
                              "description": "optional hosts: refused (unless allowed) without a line in the end-of-run summary"}
                }
            },
            "env": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "allow": strings, "deny": strings,
                    "set": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "secrets": {
                "type": "object",
                "additionalProperties": {
                    "type": "object", "additionalProperties": false,
                    "required": ["hosts"],
                    "properties": {
                        "hosts": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "from": {"type": "string", "pattern": "^(env:[A-Za-z_][A-Za-z0-9_]*|@.+)$"}
                    }
                }
            },
            "unix_sockets": strings,
            "notes": {"type": "string"}
        }
    })
}

/// The top-level keys the parser accepts (kept in sync with the schema by a test).
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "zerobox",
    "name",
    "version",
    "description",
    "command",
    "args",
    "extends",
    "platforms",
    "filesystem",
    "network",
    "env",
    "secrets",
    "unix_sockets",
    "notes",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(s: &str) -> Result<PresetDoc, PresetError> {
        parse_override(s.as_bytes(), "o.yaml")
    }

    #[test]
    fn schema_keys_in_sync() {
        let schema = json_schema();
        let mut keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        let mut ours = TOP_LEVEL_KEYS.to_vec();
        ours.sort();
        assert_eq!(keys, ours);
        // every top-level key is accepted by the parser
        for k in TOP_LEVEL_KEYS {
            let doc = format!("{k}: ~\n");
            let e = ov(&doc).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!e.contains("unknown field"), "{k}: {e}");
        }
    }

    #[test]
    fn args_only_in_a_signed_preset() {
        let e = ov("args: [\"--yolo\"]\n").unwrap_err().to_string();
        assert!(e.contains("`args` is not allowed in an override"), "{e}");
        assert!(e.contains("o.yaml:1:"), "{e}");
    }

    #[test]
    fn unknown_variable_has_position() {
        let e = ov("filesystem:\n  write:\n    allow:\n      - $FOO/x\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("o.yaml:4:9:"), "{e}");
        assert!(e.contains("$FOO") && e.contains("$CWD"), "{e}");
        for good in [
            "~", "~/.x", "$HOME/a", "${CWD}/b", "$TMPDIR", ".", "src", "/usr",
        ] {
            ov(&format!("filesystem:\n  write:\n    allow: [\"{good}\"]\n")).unwrap();
        }
        for bad in ["~root/x", "/a/$HOME", "$PWD/x", "", "/a/*/b"] {
            assert!(
                ov(&format!("filesystem:\n  write:\n    allow: [\"{bad}\"]\n")).is_err(),
                "{bad}"
            );
        }
        ov("filesystem:\n  read:\n    deny: [\"/etc/ssh/key*\"]\n").unwrap();
    }

    #[test]
    fn wrong_types_and_unknown_keys() {
        let e = ov("network:\n  allow: yes\n").unwrap_err().to_string();
        assert!(e.starts_with("o.yaml:2:"), "{e}");
        let e = ov("network:\n  alow: [a.com]\n").unwrap_err().to_string();
        assert!(e.starts_with("o.yaml:2:3:") && e.contains("alow"), "{e}");
        let e = ov("name: x\n").unwrap_err().to_string();
        assert!(e.contains("not allowed in an override"), "{e}");
    }

    #[test]
    fn hosts_and_secrets() {
        ov("network:\n  allow: [api.example.com, '*.example.com', 'a.b:443', '*']\n").unwrap();
        // One grammar with the CLI (`policy::net`): a name is normalised
        // (lowercased, IDNA), as `--allow-net` always did.
        ov("network:\n  allow: [Api.example.com, '10.0.0.0/8:*']\n").unwrap();
        for bad in ["a..b", "http://x", "a.b:0", "-a.b", "a b"] {
            assert!(
                ov(&format!("network:\n  allow: ['{bad}']\n")).is_err(),
                "{bad}"
            );
        }
        ov("secrets:\n  K:\n    hosts: [api.x.com]\n    from: env:OTHER\n").unwrap();
        assert!(ov("secrets:\n  K:\n    hosts: []\n").is_err());
        assert!(ov("secrets:\n  K:\n    hosts: ['*']\n").is_err());
        assert!(ov("secrets:\n  K:\n    hosts: [a.com]\n    from: $X\n").is_err());
        assert!(ov("secrets:\n  1K:\n    hosts: [a.com]\n").is_err());
    }

    /// `network.quiet` takes the allow grammar (no `*`), maps to the
    /// layer, and counts as widening in an untrusted project file (it would
    /// hide what the command tries).
    #[test]
    fn quiet_hosts() {
        let d = ov("network:\n  quiet: [updates.example.com, '*.telemetry.example', 'a.b:8443']\n")
            .unwrap();
        let l = d.to_layer(crate::policy::Origin::Test);
        assert_eq!(
            l.net_quiet,
            ["updates.example.com", "*.telemetry.example", "a.b:8443"]
        );
        // Never a grant.
        assert!(l.net_allow.is_empty() && !l.net_allow_any);
        assert!(d
            .widening_entries()
            .iter()
            .any(|e| e.starts_with("network.quiet: updates.example.com")));
        let e = ov("network:\n  quiet: ['*']\n").unwrap_err().to_string();
        assert!(
            e.starts_with("o.yaml:2:") && e.contains("hide every refused"),
            "{e}"
        );
        for bad in ["http://x", "a.b:0", "a b"] {
            let e = ov(&format!("network:\n  quiet: ['{bad}']\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("invalid host"), "{bad}: {e}");
        }
    }

    #[test]
    fn layer_mapping_and_widening() {
        let d = ov("filesystem:\n  write:\n    allow: [.]\n    deny: [.git/hooks]\nnetwork:\n  allow: ['*', a.com]\nenv:\n  set:\n    A: b\nsecrets:\n  K:\n    hosts: [a.com]\n").unwrap();
        let l = d.to_layer(Origin::Test);
        assert!(l.net_allow_any);
        assert_eq!(l.net_allow, vec!["a.com"]);
        assert_eq!(l.write_deny, vec![".git/hooks"]);
        assert_eq!(l.env_set, vec![("A".into(), "b".into())]);
        assert_eq!(l.secrets[0].hosts, vec!["a.com"]);
        let w = d.widening_entries();
        assert!(
            w.iter().any(|e| e.starts_with("filesystem.write.allow: .")),
            "{w:?}"
        );
        assert!(w.iter().any(|e| e.starts_with("secrets: K")), "{w:?}");
        let narrow = ov(
            "filesystem:\n  write:\n    deny: [x]\nenv:\n  deny: [A*]\nnetwork:\n  deny: [a.com]\n",
        )
        .unwrap();
        assert!(narrow.widening_entries().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_override(&bytes, "fuzz.yaml");
        }

        #[test]
        fn never_panics_on_yamlish_input(s in "[a-z:_ \\n\\-\\[\\]{},.$~*/'\"&!0-9]{0,300}") {
            let _ = parse_override(s.as_bytes(), "fuzz.yaml");
        }

        #[test]
        fn names_never_traverse(s in "\\PC{0,70}") {
            if crate::preset::valid_name(&s) {
                proptest::prop_assert!(!s.contains('/') && !s.contains('.') && !s.is_empty() && s.len() <= 64);
            }
        }
    }
}
