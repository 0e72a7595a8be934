//! Verification (minisign) and trust records: the verifier. Signing and
//! key generation are `signer`'s (which may use the parser; this module
//! must not, so the parser can depend on the proof type below).
//!
//! [`VerifiedBytes`] is the proof that bytes passed a check: a minisign
//! signature by a trusted key whose trusted comment binds the content, or
//! (for a local file) the user's `zerobox trust` of that exact content. Only
//! this module can build one, and the preset parser takes nothing else.
//!
//! Trusted comments: `preset=NAME version=VER sha256=HEX` for a preset,
//! `index serial=N sha256=HEX` for a registry index. Legacy (non-prehashed)
//! signatures are refused.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::{sha256_hex, PresetEnv, PresetError};

/// The project's own public key, embedded at build time.
pub const EMBEDDED_PUBLIC_KEY: &str = include_str!("zerobox-presets.pub");

/// Bytes that passed verification. Fields are private; only the verifier
/// in this module constructs the type.
#[derive(Debug, Clone)]
pub struct VerifiedBytes {
    bytes: Vec<u8>,
    file: String,
    source: String,
    sha256: String,
    key_id: Option<String>,
    signed: Option<(String, String)>,
}

impl VerifiedBytes {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The file name or URL used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }
    /// `bundled`, `cache`, a registry URL, or `file`.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The signing key's id (16 hex digits), `None` for content trusted by hash.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
    /// `(name, version)` from the signed trusted comment of a preset.
    pub fn signed_name_version(&self) -> Option<(&str, &str)> {
        self.signed.as_ref().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The same verified bytes without the trusted comment's name and
    /// version: for the signer's probe signature, whose comment cannot name
    /// them yet (it reads them from this parse, then signs for real and
    /// verifies again with the binding).
    pub(super) fn without_comment_binding(self) -> VerifiedBytes {
        VerifiedBytes {
            signed: None,
            ..self
        }
    }
}

/// A public key zerobox trusts.
pub struct TrustedKey {
    pub id: String,
    pub label: String,
    key: minisign_verify::PublicKey,
}

/// The keys a run trusts: the embedded project key plus the user's
/// `$XDG_CONFIG_HOME/zerobox/keys/*.pub` (added with `preset trust-key`).
pub struct KeyRing {
    pub keys: Vec<TrustedKey>,
}

/// Key id of a minisign public key or signature: bytes 2..10, shown as a
/// little-endian u64 in hex (as `minisign` shows it).
fn key_id_of(b64: &str) -> Option<String> {
    let bin = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let id: [u8; 8] = bin.get(2..10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

/// Parse a public key: a `.pub` file's text (comment + base64) or the bare base64 line.
pub fn parse_public_key(text: &str) -> Result<(String, String), String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or("empty key")?;
    minisign_verify::PublicKey::from_base64(line)
        .map_err(|e| format!("not a minisign public key ({e})"))?;
    let id = key_id_of(line).ok_or("not a minisign public key")?;
    Ok((id, line.to_string()))
}

impl KeyRing {
    pub fn embedded() -> Self {
        // Proof: the key is a constant of this build, and the unit test
        // `embedded_key_parses` parses it; it cannot fail at run time.
        #[allow(clippy::expect_used)]
        let (id, b64) = parse_public_key(EMBEDDED_PUBLIC_KEY).expect("embedded key is valid");
        // Proof: `parse_public_key` has just decoded this same base64 as a
        // minisign public key.
        #[allow(clippy::expect_used)]
        let key = minisign_verify::PublicKey::from_base64(&b64).expect("embedded key is valid");
        KeyRing {
            keys: vec![TrustedKey {
                id,
                label: "zerobox project key (embedded)".into(),
                key,
            }],
        }
    }

    /// Embedded key plus the user's trusted keys. A malformed key file is
    /// an error (never silently skipped).
    pub fn load(env: &PresetEnv) -> Result<Self, PresetError> {
        let mut ring = Self::embedded();
        let dir = env.config_dir.join("keys");
        if !super::present(&dir)? {
            return Ok(ring);
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| PresetError::Unreadable {
            path: dir.display().to_string(),
            source: e,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        paths.sort();
        for p in paths {
            let text = String::from_utf8(super::read_capped(&p, 4096)?).unwrap_or_default();
            let (id, b64) = parse_public_key(&text).map_err(|m| PresetError::InvalidFile {
                file: p.display().to_string(),
                message: format!(
                    "{m}; remove the file or re-add the key with `zerobox preset trust-key`"
                ),
            })?;
            ring.add(id, format!("user key {}", p.display()), &b64);
        }
        Ok(ring)
    }

    /// A ring holding exactly one key (tests, signing self-checks).
    pub fn single(pub_text: &str, label: &str) -> Result<Self, String> {
        let (id, b64) = parse_public_key(pub_text)?;
        let mut ring = KeyRing { keys: Vec::new() };
        ring.add(id, label.to_string(), &b64);
        Ok(ring)
    }

    fn add(&mut self, id: String, label: String, b64: &str) {
        if self.keys.iter().any(|k| k.id == id) {
            return;
        }
        if let Ok(key) = minisign_verify::PublicKey::from_base64(b64) {
            self.keys.push(TrustedKey { id, label, key });
        }
    }

    /// Check `sig_text` over `bytes`; return the signing key id and the
    /// trusted comment. Nothing about `bytes` is parsed.
    fn check(
        &self,
        bytes: &[u8],
        sig_text: &[u8],
        file: &str,
    ) -> Result<(String, String), PresetError> {
        let bad = |reason: String| PresetError::Signature {
            file: file.to_string(),
            reason,
        };
        if sig_text.len() > super::MAX_SIG_BYTES {
            return Err(bad("the .minisig file is too large".into()));
        }
        let text = std::str::from_utf8(sig_text)
            .map_err(|_| bad("the .minisig file is not text".into()))?;
        let sig = minisign_verify::Signature::decode(text)
            .map_err(|e| bad(format!("the .minisig file is malformed ({e})")))?;
        let sig_line = text.lines().nth(1).unwrap_or_default();
        let sig_id =
            key_id_of(sig_line).ok_or_else(|| bad("the .minisig file is malformed".into()))?;
        let alg = base64::engine::general_purpose::STANDARD
            .decode(sig_line.trim())
            .ok()
            .and_then(|b| b.get(0..2).map(|a| a.to_vec()))
            .unwrap_or_default();
        if alg != b"ED" {
            return Err(bad(
                "legacy (non-prehashed) signature refused; re-sign with `zerobox preset sign` or `minisign -S`".into(),
            ));
        }
        let key =
            self.keys
                .iter()
                .find(|k| k.id == sig_id)
                .ok_or_else(|| PresetError::UnknownKey {
                    file: file.to_string(),
                    key_id: sig_id.clone(),
                })?;
        key.key
            .verify(bytes, &sig, false)
            .map_err(|e| bad(format!("invalid signature by key {sig_id} ({e}): the file was modified or the signature belongs to other content")))?;
        Ok((sig_id, sig.trusted_comment().to_string()))
    }
}

fn comment_fields(comment: &str) -> std::collections::BTreeMap<&str, &str> {
    comment
        .split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

/// Verify a preset file and its `.minisig`: trusted key, valid signature,
/// trusted comment `preset=NAME version=VER sha256=HEX` with the digest of
/// these bytes. `expect` (name, version) guards against mix-and-match.
pub fn verify_preset(
    ring: &KeyRing,
    bytes: Vec<u8>,
    sig_text: &[u8],
    file: &str,
    source: &str,
    expect: Option<(&str, Option<&semver::Version>)>,
) -> Result<VerifiedBytes, PresetError> {
    if bytes.len() > super::MAX_PRESET_BYTES {
        return Err(PresetError::TooLarge {
            what: file.to_string(),
            limit: super::MAX_PRESET_BYTES,
        });
    }
    let (key_id, comment) = ring.check(&bytes, sig_text, file)?;
    let bad = |reason: String| PresetError::Signature {
        file: file.to_string(),
        reason,
    };
    let f = comment_fields(&comment);
    let (Some(name), Some(version), Some(sha)) =
        (f.get("preset"), f.get("version"), f.get("sha256"))
    else {
        return Err(bad(format!(
            "trusted comment {comment:?} does not bind preset=NAME version=VER sha256=HEX; re-sign with `zerobox preset sign`"
        )));
    };
    let actual = sha256_hex(&bytes);
    if *sha != actual {
        return Err(PresetError::Digest {
            what: file.to_string(),
            expected: sha.to_string(),
            actual,
        });
    }
    if let Some((en, ev)) = expect {
        let version_ok = ev.is_none_or(|v| v.to_string() == *version);
        if *name != en || !version_ok {
            let want = match ev {
                Some(v) => format!("{en}@{v}"),
                None => en.to_string(),
            };
            return Err(bad(format!(
                "the signature is for {name}@{version}, not {want} (mix-and-match refused)"
            )));
        }
    }
    Ok(VerifiedBytes {
        file: file.to_string(),
        source: source.to_string(),
        sha256: actual,
        key_id: Some(key_id),
        signed: Some((name.to_string(), version.to_string())),
        bytes,
    })
}

/// Verify a registry index and its signature; returns the verified bytes
/// and the serial from the trusted comment.
pub fn verify_index(
    ring: &KeyRing,
    bytes: Vec<u8>,
    sig_text: &[u8],
    file: &str,
) -> Result<(VerifiedBytes, u64), PresetError> {
    if bytes.len() > super::MAX_INDEX_BYTES {
        return Err(PresetError::TooLarge {
            what: file.to_string(),
            limit: super::MAX_INDEX_BYTES,
        });
    }
    let (key_id, comment) = ring.check(&bytes, sig_text, file)?;
    let f = comment_fields(&comment);
    let (Some(_), Some(serial), Some(sha)) = (f.get("index"), f.get("serial"), f.get("sha256"))
    else {
        return Err(PresetError::Signature {
            file: file.to_string(),
            reason: format!(
                "trusted comment {comment:?} is not an index comment (index serial=N sha256=HEX)"
            ),
        });
    };
    let serial: u64 = serial.parse().map_err(|_| PresetError::Signature {
        file: file.to_string(),
        reason: format!("bad serial in trusted comment {comment:?}"),
    })?;
    let actual = sha256_hex(&bytes);
    if *sha != actual {
        return Err(PresetError::Digest {
            what: file.to_string(),
            expected: sha.to_string(),
            actual,
        });
    }
    Ok((
        VerifiedBytes {
            file: file.to_string(),
            source: "registry".into(),
            sha256: actual,
            key_id: Some(key_id),
            signed: None,
            bytes,
        },
        serial,
    ))
}

/// Where `zerobox trust` records trusted content:
/// `$XDG_DATA_HOME/zerobox/trust/`, one record per (project, file,
/// content). The launcher denies the data dir inside the sandbox, so the
/// command can neither read which files were trusted nor write a record.
pub fn trust_dir(env: &PresetEnv) -> PathBuf {
    env.data_dir.join("trust")
}

/// One trust decision: this content, at this real path, for this project.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct TrustRecord {
    project: String,
    file: String,
    sha256: String,
}

/// The canonical project root trust is scoped to.
fn project_root(env: &PresetEnv) -> PathBuf {
    std::fs::canonicalize(&env.project_dir).unwrap_or_else(|_| env.project_dir.clone())
}

/// The record's file name: a digest of project root, real file path and
/// content digest (raw path bytes, so no two paths share a name).
fn record_name(project: &Path, real: &Path, sha: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut m = b"zerobox-trust-2\0".to_vec();
    m.extend_from_slice(project.as_os_str().as_bytes());
    m.push(0);
    m.extend_from_slice(real.as_os_str().as_bytes());
    m.push(0);
    m.extend_from_slice(sha.as_bytes());
    sha256_hex(&m)
}

/// Did the user trust exactly this content at this real path (`real`, as
/// the kernel opened it) for the current project? A copy of trusted content
/// at another path, or the same file seen from another project, is not
/// trusted. A trust store that exists but cannot be read is an error.
pub fn is_trusted(env: &PresetEnv, real: &Path, sha: &str) -> Result<bool, PresetError> {
    let project = project_root(env);
    let path = trust_dir(env).join(record_name(&project, real, sha));
    if !super::present(&path)? {
        return Ok(false);
    }
    let bytes = super::read_capped(&path, 16 * 1024)?;
    let want = TrustRecord {
        project: project.display().to_string(),
        file: real.display().to_string(),
        sha256: sha.to_string(),
    };
    Ok(serde_json::from_slice::<TrustRecord>(&bytes).is_ok_and(|r| r == want))
}

/// Record the user's trust of content `sha` at real path `real` for the
/// current project.
pub fn record_trust(env: &PresetEnv, real: &Path, sha: &str) -> Result<(), PresetError> {
    use std::os::unix::fs::DirBuilderExt;
    let project = project_root(env);
    let dir = trust_dir(env);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| PresetError::io(&dir, e))?;
    let rec = TrustRecord {
        project: project.display().to_string(),
        file: real.display().to_string(),
        sha256: sha.to_string(),
    };
    let bytes = serde_json::to_vec_pretty(&rec).map_err(|source| PresetError::Encode {
        what: "the trust record",
        source,
    })?;
    super::write_atomic(&dir.join(record_name(&project, real, sha)), &bytes)
}

/// A local preset file given by path (`--profile FILE`, `preset verify`):
/// verified by its `FILE.minisig` (trusted key) or, when unsigned, by the
/// user's `zerobox trust FILE` of this exact content.
pub fn verify_local(
    ring: &KeyRing,
    env: &PresetEnv,
    path: &Path,
) -> Result<VerifiedBytes, PresetError> {
    let super::ReadFile { bytes, real } = super::read_real(path, super::MAX_PRESET_BYTES)?;
    let file = path.display().to_string();
    let sig_path = sig_path_of(path);
    if super::present(&sig_path)? {
        let sig = super::read_capped(&sig_path, super::MAX_SIG_BYTES)?;
        return verify_preset(ring, bytes, &sig, &file, "file", None);
    }
    let sha = sha256_hex(&bytes);
    if is_trusted(env, &real, &sha)? {
        return Ok(VerifiedBytes {
            file,
            source: "file (trusted)".into(),
            sha256: sha,
            key_id: None,
            signed: None,
            bytes,
        });
    }
    Err(PresetError::Untrusted {
        file,
        message: format!(
            "unsigned and not trusted (sha256 {sha}); review it, then run `zerobox trust {}` or sign it (`zerobox preset sign FILE --key KEY` with a key added by `zerobox preset trust-key`)",
            path.display()
        ),
    })
}

pub fn sig_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".minisig");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    // Tests sign with the publisher's side to check the verifier.
    use crate::preset::signer::{index_comment, keygen, preset_comment, sign_bytes, sign_preset};

    const DOC: &str = "zerobox: 1\nname: demo\nversion: 1.0.0\ncommand: demo\n";

    fn key() -> (minisign::SecretKey, KeyRing) {
        let (sk, pk, _) = keygen().unwrap();
        let sk = minisign::SecretKeyBox::from_string(&sk)
            .unwrap()
            .into_unencrypted_secret_key()
            .unwrap();
        (sk, KeyRing::single(&pk, "t").unwrap())
    }

    #[test]
    fn embedded_key_parses() {
        let r = KeyRing::embedded();
        assert_eq!(r.keys[0].id, "94399AF7489A1798");
    }

    #[test]
    fn good_and_bad_signatures() {
        let (sk, ring) = key();
        let (sig, p) = sign_preset(&sk, DOC.as_bytes(), "demo.yaml").unwrap();
        assert_eq!(p.name, "demo");
        let v = verify_preset(
            &ring,
            DOC.into(),
            sig.as_bytes(),
            "f",
            "t",
            Some(("demo", None)),
        )
        .unwrap();
        assert_eq!(v.signed_name_version(), Some(("demo", "1.0.0")));
        // tampered
        let tampered = DOC.replace("demo\n", "evil\n");
        let e = verify_preset(&ring, tampered.into(), sig.as_bytes(), "f", "t", None).unwrap_err();
        assert!(matches!(e, PresetError::Signature { .. }), "{e}");
        // wrong key
        let (_, other) = key();
        let e = verify_preset(&other, DOC.into(), sig.as_bytes(), "f", "t", None).unwrap_err();
        assert!(matches!(e, PresetError::UnknownKey { .. }), "{e}");
        // mix-and-match: valid signature of demo presented as another name
        let e = verify_preset(
            &ring,
            DOC.into(),
            sig.as_bytes(),
            "f",
            "t",
            Some(("other", None)),
        )
        .unwrap_err();
        assert!(e.to_string().contains("mix-and-match"), "{e}");
        let e = verify_preset(
            &ring,
            DOC.into(),
            sig.as_bytes(),
            "f",
            "t",
            Some(("demo", Some(&semver::Version::new(2, 0, 0)))),
        )
        .unwrap_err();
        assert!(e.to_string().contains("mix-and-match"), "{e}");
        // garbage signature
        let e = verify_preset(&ring, DOC.into(), b"garbage", "f", "t", None).unwrap_err();
        assert!(matches!(e, PresetError::Signature { .. }), "{e}");
        // comment without binding
        let s = sign_bytes(&sk, DOC.as_bytes(), "timestamp:1").unwrap();
        assert!(verify_preset(&ring, DOC.into(), s.as_bytes(), "f", "t", None).is_err());
        // comment binding another digest
        let s = sign_bytes(&sk, DOC.as_bytes(), "preset=demo version=1.0.0 sha256=00").unwrap();
        let e = verify_preset(&ring, DOC.into(), s.as_bytes(), "f", "t", None).unwrap_err();
        assert!(matches!(e, PresetError::Digest { .. }), "{e}");
    }

    #[test]
    fn legacy_signature_refused() {
        let (sk, ring) = key();
        let sig = sign_bytes(
            &sk,
            DOC.as_bytes(),
            &preset_comment("demo", &semver::Version::new(1, 0, 0), DOC.as_bytes()),
        )
        .unwrap();
        // Turn the algorithm bytes "ED" into legacy "Ed".
        let mut lines: Vec<String> = sig.lines().map(String::from).collect();
        let mut bin = base64::engine::general_purpose::STANDARD
            .decode(&lines[1])
            .unwrap();
        bin[1] = b'd';
        lines[1] = base64::engine::general_purpose::STANDARD.encode(bin);
        let e = verify_preset(
            &ring,
            DOC.into(),
            lines.join("\n").as_bytes(),
            "f",
            "t",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("legacy"), "{e}");
    }

    #[test]
    fn index_signatures() {
        let (sk, ring) = key();
        let idx = b"zerobox-index: 1\n";
        let sig = sign_bytes(&sk, idx, &index_comment(7, idx)).unwrap();
        let (_, serial) = verify_index(&ring, idx.to_vec(), sig.as_bytes(), "i").unwrap();
        assert_eq!(serial, 7);
        // a preset signature is not an index signature
        let psig = sign_bytes(
            &sk,
            idx,
            &preset_comment("x", &semver::Version::new(1, 0, 0), idx),
        )
        .unwrap();
        assert!(verify_index(&ring, idx.to_vec(), psig.as_bytes(), "i").is_err());
    }
}
