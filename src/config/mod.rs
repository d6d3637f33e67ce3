//! Typed configuration: what the operator writes (YAML), with defaults.
//!
//! Loading is two steps so that every error names its field: YAML is parsed into a generic
//! value, then deserialized with `serde_path_to_error` (type errors and unknown keys carry
//! their path), then [`validate::resolve`] checks meaning (references, ranges, cross-field
//! rules) and reports *every* problem at once before producing the resolved [`Spec`].

pub mod duration;
pub mod raw;
pub mod site;
pub mod spec;
mod validate;

pub use duration::Dur;
pub use raw::*;
pub use spec::*;

use serde::Deserialize;
use std::path::Path;

/// One problem found in a config file: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Field path, e.g. `groups[0].targets[1].probes[0].http.url`.
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Errors of this module. `Invalid` carries every issue found, not just the first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Yaml(String),
    #[error("config has {} problem(s):\n{}", .0.len(), .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Issue>),
}

impl ConfigError {
    /// The issues, for callers that want to show or test them individually.
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            ConfigError::Invalid(v) => v.clone(),
            ConfigError::Yaml(m) => vec![Issue {
                path: "(document)".into(),
                reason: m.clone(),
            }],
            ConfigError::Read { path, source } => vec![Issue {
                path: path.clone(),
                reason: source.to_string(),
            }],
        }
    }
}

/// Read, parse and validate a config file into a resolved [`Spec`].
pub fn load(path: &Path) -> Result<Spec, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    from_yaml(&text)
}

/// Parse and validate config text into a resolved [`Spec`].
pub fn from_yaml(text: &str) -> Result<Spec, ConfigError> {
    let raw = parse_raw(text)?;
    validate::resolve(&raw, &|k| std::env::var(k).ok())
}

/// Resolve a config whose groups were put in from FloatGroup objects (any number of
/// groups, zero included).
pub fn resolve_objects(
    raw: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Spec, ConfigError> {
    validate::resolve_from(raw, env, validate::Origin::Objects)
}

/// Parse config text into the raw (unvalidated) form.
pub fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(yaml_error(&e)))?;
    let found = match &value {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Null => Some("nothing (the config is empty)"),
        serde_json::Value::Array(_) => Some("a list"),
        serde_json::Value::String(_) => Some("a single string"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::Bool(_) => Some("a boolean"),
    };
    if let Some(found) = found {
        return Err(ConfigError::Invalid(vec![Issue {
            path: "(document)".into(),
            reason: format!(
                "the config must be a mapping of keys (leader:, groups:, ...), but the file holds {found}"
            ),
        }]));
    }
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(&value, &mut track);
    RawConfig::deserialize(de).map_err(|e| {
        let path = track.path().to_string();
        ConfigError::Invalid(vec![Issue {
            path: if path == "." {
                "(document)".into()
            } else {
                path
            },
            reason: humane_serde(&e.to_string()),
        }])
    })
}

/// A YAML error in the user's words; a duplicate key is named (the parser knows it).
fn yaml_error(e: &serde_saphyr::Error) -> String {
    let mut inner = e.without_snippet();
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    if let serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } = inner {
        let at = location(&e.to_string());
        return format!(
            "the key `{key}` appears twice in the same mapping{at}; remove one of them"
        );
    }
    humane_yaml(&e.to_string())
}

/// The YAML parser's messages, in the words of someone editing a config file (no parser
/// internals such as policy or budget type names).
fn humane_yaml(msg: &str) -> String {
    let lower = msg.to_lowercase();
    let at = location(msg);
    if lower.contains("duplicate") {
        format!("a key appears twice in the same mapping{at}; remove one of them")
    } else if lower.contains("from_str_multiple") || lower.contains("multiple documents") {
        "the file holds more than one YAML document (a `---` line); a config is exactly one document".into()
    } else if lower.contains("budget") {
        "the document is too large or uses too many aliases (&anchor / *alias) to be a config"
            .into()
    } else {
        format!(
            "not valid YAML: {}",
            strip_internals(msg.trim_start_matches("error: "))
        )
    }
}

/// " at line L, column C" if the message carries a position.
fn location(msg: &str) -> String {
    let Some(i) = msg.find("line ") else {
        return String::new();
    };
    let tail: String = msg[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | ','))
        .collect();
    format!(" (at {})", tail.trim_end_matches([',', ' ']))
}

/// Type errors from serde name Rust types (`struct RawApi`); say "a mapping" instead.
fn humane_serde(msg: &str) -> String {
    strip_internals(msg)
}

fn strip_internals(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("struct Raw") {
        out.push_str(&rest[..i]);
        out.push_str("a mapping");
        let after = &rest[i + "struct Raw".len()..];
        let end = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out.replace("enum Raw", "one of the listed keys")
}

#[cfg(test)]
mod tests;
