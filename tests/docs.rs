//! The docs stay true: every relative link in the README and `docs/` points at a file that
//! exists (and at a heading that exists, for `page.md#anchor`), and every config key the
//! code reads is in `docs/config.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if l.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && l.starts_with('#') {
            out.insert(anchor(l.trim_start_matches('#')));
        }
    }
    out
}

/// Markdown link targets `[text](target)` outside code fences.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if l.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = l;
        while let Some(i) = rest.find("](") {
            let tail = &rest[i + 2..];
            let Some(end) = tail.find(')') else { break };
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("readable");
        let dir = page.parent().unwrap_or(Path::new("."));
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.is_empty() {
                continue;
            }
            let (file, frag) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            if let Some(a) = frag
                && target.extension().is_some_and(|x| x == "md")
            {
                let t = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&t).contains(a) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_short() {
    let n = std::fs::read_to_string(root().join("README.md"))
        .expect("readable")
        .lines()
        .count();
    assert!(
        n <= 250,
        "README.md has {n} lines; reference goes under docs/"
    );
}

/// Keys whose children are the user's own names (tags, API names, services).
const FREE_FORM: &[&str] = &["tags", "api_limits", "service_endpoints"];

fn keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                if !FREE_FORM.contains(&k.as_str()) {
                    keys(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[test]
fn every_config_key_is_in_the_config_reference() {
    // The examples use every part of the config; serialized, the parsed form also carries
    // every key that has a default, so a key added to the code shows up here.
    let mut all = BTreeSet::new();
    for f in ["examples/floatover.yaml", "examples/sites.yaml"] {
        let text = std::fs::read_to_string(root().join(f)).expect("readable");
        let raw = floatover::config::parse_raw(&text).expect("the example parses");
        keys(&serde_json::to_value(&raw).expect("serializes"), &mut all);
    }
    let doc = std::fs::read_to_string(root().join("docs/config.md")).expect("readable");
    let mut words = BTreeSet::new();
    for (i, span) in doc.split('`').enumerate() {
        if i % 2 == 1 {
            for w in span.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                words.insert(w.to_string());
            }
        }
    }
    let missing: Vec<&String> = all.iter().filter(|k| !words.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "config keys missing from docs/config.md: {missing:?}"
    );
}
