//! (f) A corpus of bad configs: `floatover check` rejects each with exit 1 and a message
//! naming the field (first line of each file: `# expect: <field path>`), without panicking.
//! The example config in the repository must pass.

use std::process::Command;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_floatover"))
        .args(["check", "-c"])
        .arg(path)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("FLOATOVER_TEST_UNSET_VAR")
        .output()
        .expect("run floatover")
}

#[test]
fn every_bad_config_is_rejected_naming_its_field() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs");
    let mut n = 0;
    let mut failures = vec![];
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let text = std::fs::read_to_string(&path).expect("read");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("first line: # expect: <path>")
            .trim()
            .to_string();
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        n += 1;
        // Messages speak the user's words, never the parser's.
        let leaked = [
            "panicked",
            "DuplicateKeyPolicy",
            "from_str_multiple",
            "budget breached",
            "Raw",
            "serde",
        ]
        .iter()
        .find(|w| stderr.contains(*w));
        if out.status.code() != Some(1) || !stderr.contains(&expect) || leaked.is_some() {
            failures.push(format!(
                "{}: exit {:?}, expected {expect:?} in:\n{stderr}",
                path.display(),
                out.status.code()
            ));
        }
    }
    assert!(n >= 50, "corpus too small: {n}");
    assert!(
        failures.is_empty(),
        "{} of {n} bad configs not rejected properly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A newcomer's first command passes as shipped, with nothing set in the environment.
#[test]
fn example_configs_are_valid() {
    for name in ["examples/floatover.yaml", "examples/sites.yaml"] {
        example_is_valid(name);
    }
}

fn example_is_valid(name: &str) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_floatover"))
        .args(["check", "-c"])
        .arg(&p)
        .env_remove("FLOATOVER_TOKEN")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .expect("run floatover");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_file_and_bad_args_fail_cleanly() {
    let out = check(std::path::Path::new("/nonexistent/floatover.yaml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let out = Command::new(env!("CARGO_BIN_EXE_floatover"))
        .args(["run", "--bogus"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
