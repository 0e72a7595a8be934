//! The one place YAML is parsed: a thin wrapper over `serde-saphyr`.
//!
//! Why serde-saphyr (see docs/presets.md): pure safe Rust, budgets against
//! alias bombs and deep nesting, duplicate keys rejected, errors carry
//! line/column. `serde_yaml` is archived and `serde_yml` has
//! RUSTSEC-2025-0068. Keeping the dependency behind this wrapper means a
//! swap touches one file.

use serde::de::DeserializeOwned;

use super::PresetError;

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 16;
    budget.max_documents = 1;
    budget.max_nodes = 20_000;
    budget.max_aliases = 0;
    budget.max_anchors = 0;
    budget.max_total_scalar_bytes = super::MAX_INDEX_BYTES;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    o.strict_booleans = true;
    o.with_snippet = false;
    o
}

/// Parse one YAML document from `bytes`; errors name `file:line:column`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8], file: &str) -> Result<T, PresetError> {
    let text = std::str::from_utf8(bytes).map_err(|e| PresetError::InvalidFile {
        file: file.to_string(),
        message: format!(
            "not UTF-8 text (byte {}); save the file as UTF-8",
            e.valid_up_to()
        ),
    })?;
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        // serde-saphyr appends its own position; ours leads the line.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        let message = message.lines().next().unwrap_or_default().to_string();
        match loc {
            Some(l) if l.line() > 0 => PresetError::Invalid {
                file: file.to_string(),
                line: l.line(),
                column: l.column(),
                message,
            },
            _ => PresetError::InvalidFile {
                file: file.to_string(),
                message,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
        #[serde(default)]
        b: Vec<String>,
    }

    fn err(s: &str) -> String {
        parse::<T>(s.as_bytes(), "f.yaml").unwrap_err().to_string()
    }

    #[test]
    fn errors_carry_position() {
        let e = err("a: 1\nzz: 2\n");
        assert!(e.starts_with("f.yaml:2:1:"), "{e}");
        assert!(e.contains("zz"), "{e}");
        let e = err("a: x\n");
        assert!(e.starts_with("f.yaml:1:4:"), "{e}");
        let e = err("a: 1\na: 2\n");
        assert!(e.starts_with("f.yaml:2:"), "{e}");
        assert!(e.to_lowercase().contains("duplicate"), "{e}");
    }

    #[test]
    fn alias_bombs_and_multiple_documents_refused() {
        let bomb = "a: 1\nb: &x [1,2]\n";
        assert!(parse::<T>(bomb.as_bytes(), "f").is_err());
        assert!(parse::<T>(b"a: 1\n---\na: 2\n", "f").is_err());
        assert!(parse::<T>(b"\xff\xfe", "f").is_err());
    }
}
