//! Signing presets and registry indexes, and making keys: what a
//! publisher does (`zerobox preset sign`, `keygen`, `publish`). Kept out
//! of the verifier (`sign`): signing a preset parses it (`schema`), and
//! the parser depends on the verifier's proof type, so the two directions
//! live in two modules (schema → sign, signer → schema + sign).

use std::path::Path;

use base64::Engine as _;

use super::sign::{parse_public_key, verify_preset, KeyRing};
use super::{sha256_hex, PresetError};

/// Load an (unencrypted) minisign secret key.
pub fn load_secret_key(path: &Path) -> Result<minisign::SecretKey, PresetError> {
    let text = String::from_utf8(super::read_capped(path, 4096)?).map_err(|_| {
        PresetError::InvalidFile {
            file: path.display().to_string(),
            message: "not a minisign secret key".into(),
        }
    })?;
    let sk_box =
        minisign::SecretKeyBox::from_string(&text).map_err(|e| PresetError::InvalidFile {
            file: path.display().to_string(),
            message: format!("not a minisign secret key ({e})"),
        })?;
    match sk_box.into_unencrypted_secret_key() {
        Ok(sk) => Ok(sk),
        Err(e) => repair_checksum(&text).ok_or_else(|| PresetError::InvalidFile {
            file: path.display().to_string(),
            message: format!("cannot use this secret key ({e}); zerobox signs with unencrypted keys made by `zerobox preset keygen`"),
        }),
    }
}

/// Some tools write unencrypted minisign keys with an all-zero checksum.
/// Recompute it; the key is then only used after `sign_preset`'s
/// sign-and-verify self-check with its own public half.
fn repair_checksum(text: &str) -> Option<minisign::SecretKey> {
    let line = text.lines().nth(1)?;
    let mut bin = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    // sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) ops(8) mem(8) keynum(8) sk(64) chk(32)
    if bin.len() != 158 || &bin[2..4] != b"\0\0" || bin[126..158].iter().any(|b| *b != 0) {
        return None;
    }
    let mut data = bin[0..2].to_vec();
    data.extend_from_slice(&bin[54..126]);
    // minisign's key checksum: BLAKE2b-256 over sig_alg || keynum || sk.
    use blake2::digest::{Update, VariableOutput};
    let mut hasher = blake2::Blake2bVar::new(32).ok()?;
    hasher.update(&data);
    hasher.finalize_variable(&mut bin[126..158]).ok()?;
    let sk = minisign::SecretKey::from_bytes(&bin).ok()?;
    (!sk.is_encrypted()).then_some(sk)
}

/// The public key (as `.pub` text) matching a secret key.
pub fn public_of(sk: &minisign::SecretKey) -> Result<String, PresetError> {
    let pk = minisign::PublicKey::from_secret_key(sk)
        .map_err(|e| crypto("deriving the public key", e))?;
    let b = pk
        .to_box()
        .map_err(|e| crypto("encoding the public key", e))?;
    Ok(b.into_string())
}

/// Sign `bytes` with `trusted_comment`; returns the `.minisig` text.
pub fn sign_bytes(
    sk: &minisign::SecretKey,
    bytes: &[u8],
    trusted_comment: &str,
) -> Result<String, PresetError> {
    let sig = minisign::sign(
        None,
        sk,
        std::io::Cursor::new(bytes),
        Some(trusted_comment),
        Some("signature from zerobox"),
    )
    .map_err(|e| crypto("signing", e))?;
    Ok(sig.into_string())
}

pub fn preset_comment(name: &str, version: &semver::Version, bytes: &[u8]) -> String {
    format!(
        "preset={name} version={version} sha256={}",
        sha256_hex(bytes)
    )
}

pub fn index_comment(serial: u64, bytes: &[u8]) -> String {
    format!("index=zerobox serial={serial} sha256={}", sha256_hex(bytes))
}

/// Sign preset `bytes` (after checking they are a valid preset: the new
/// signature is verified with the key's own public half and the verified
/// bytes are parsed). Returns the signature text.
pub fn sign_preset(
    sk: &minisign::SecretKey,
    bytes: &[u8],
    file: &str,
) -> Result<(String, super::schema::Preset), PresetError> {
    // Name and version are needed for the comment: sign a provisional
    // comment-free probe first is not possible, so read them from a
    // self-verified parse with an unbound comment, then sign for real.
    let pub_text = public_of(sk)?;
    let ring =
        KeyRing::single(&pub_text, "signing key").map_err(|message| PresetError::BadKey {
            what: "signing key",
            message,
        })?;
    let probe_comment = format!("preset=probe version=0.0.0 sha256={}", sha256_hex(bytes));
    let probe = sign_bytes(sk, bytes, &probe_comment)?;
    let v = verify_preset(&ring, bytes.to_vec(), probe.as_bytes(), file, "file", None)?;
    let parsed = super::schema::parse_preset(&v.without_comment_binding())?;
    let sig = sign_bytes(
        sk,
        bytes,
        &preset_comment(&parsed.name, &parsed.version, bytes),
    )?;
    // Final self-check of the real signature.
    let v = verify_preset(
        &ring,
        bytes.to_vec(),
        sig.as_bytes(),
        file,
        "file",
        Some((&parsed.name, Some(&parsed.version))),
    )?;
    let parsed = super::schema::parse_preset(&v)?;
    Ok((sig, parsed))
}

/// Generate an unencrypted key pair; returns (secret key text, public key text, id).
pub fn keygen() -> Result<(zeroize::Zeroizing<String>, String, String), PresetError> {
    let kp = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| crypto("key generation", e))?;
    let sk = kp
        .sk
        .to_box(Some("zerobox preset signing key"))
        .map_err(|e| crypto("encoding the secret key", e))?
        .into_string();
    let pk = kp
        .pk
        .to_box()
        .map_err(|e| crypto("encoding the public key", e))?
        .into_string();
    let (id, _) = parse_public_key(&pk).map_err(|message| PresetError::BadKey {
        what: "the new public key",
        message,
    })?;
    Ok((zeroize::Zeroizing::new(sk), pk, id))
}

/// A minisign step's failure: the step names what failed, minisign's
/// error text says how.
fn crypto(step: &'static str, e: impl std::fmt::Display) -> PresetError {
    PresetError::Crypto {
        step,
        message: e.to_string(),
    }
}
