//! The shape of the code, checked: the rules docs/architecture.md "Architecture" states are kept by a
//! test, not by memory. Top-level modules of `src/` form no import cycle; the core crate
//! (model, planner) depends on serde alone; EC2 ids (`eipalloc-`, `rtb-`, `eni-`) and EC2 float kinds
//! are spelled only inside `provider/aws` (and tests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with test-only code (`mod tests` files and everything
/// after `#[cfg(test)]`) cut off.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                out.push((p, code));
            }
        }
    }
    out
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::x` references per top-level module.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, code) in sources(&src) {
        let me = top_module(&src, &file);
        if me == "lib" || me == "main" {
            continue;
        }
        let deps = g.entry(me.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != me {
                deps.insert(name);
            }
        }
    }
    g
}

/// Modules on a cycle (Tarjan's strongly connected components of size > 1).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        let deps: Vec<&'a str> =
            t.g.get(v)
                .map(|d| d.iter().map(String::as_str).collect())
                .unwrap_or_default();
        for w in deps {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_import_cycles() {
    let g = graph();
    assert!(g.len() > 10, "found the modules: {g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "graph: {g:#?}");
}

#[test]
fn the_cycle_check_can_fail() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g).len(), 1);
}

/// The core (model, planner, rise/fall) depends on serde alone: no runtime, no SDK, no
/// clock. The compiler then refuses any `use tokio` or `use aws_sdk_*` in it.
#[test]
fn the_core_depends_on_serde_only() {
    let toml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/floatover-core/Cargo.toml"),
    )
    .expect("the core crate's manifest");
    let deps: Vec<String> = toml
        .split("\n[")
        .filter(|s| s.starts_with("dependencies]"))
        .flat_map(|s| s.lines().skip(1))
        .filter_map(|l| l.split('=').next())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    // schemars only behind the optional `schema` feature (the CRD's schema).
    assert_eq!(deps, vec!["serde".to_string(), "schemars".to_string()]);
    assert!(
        toml.contains("schemars = { version = \"1\", optional = true }"),
        "schemars must stay optional in the core"
    );
}

#[test]
fn ec2_ids_stay_in_the_ec2_provider() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let allowed = src.join("provider").join("aws");
    let mut offenders = Vec::new();
    let mut files = sources(&src);
    files.extend(sources(&root.join("crates/floatover-core/src")));
    for (file, code) in files {
        if file.starts_with(&allowed) {
            continue;
        }
        for needle in [
            "\"eipalloc-",
            "\"rtb-",
            "\"eni-",
            "Ec2Float::",
            "starts_with(\"i-\")",
        ] {
            if code.contains(needle) {
                offenders.push(format!("{} spells {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
