//! The Dockerfile, checked statically (no container engine runs on these machines): two
//! stages, a stripped release binary, a distroless non-root runtime whose entrypoint is the
//! binary, and the UID the Helm chart runs as.

fn dockerfile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).expect("Dockerfile")
}

/// Instructions, without comments and with continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || (l.is_empty() && cur.is_empty()) {
            continue;
        }
        cur.push_str(l.trim_end_matches('\\'));
        cur.push(' ');
        if !l.ends_with('\\') {
            let t = cur.trim().to_string();
            cur.clear();
            if let Some((op, rest)) = t.split_once(' ') {
                out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn multi_stage_stripped_distroless_non_root() {
    let ins = instructions(&dockerfile());
    let from: Vec<&String> = ins
        .iter()
        .filter(|(o, _)| o == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(from.len(), 2, "build and run stages: {from:?}");
    assert!(
        from[0].contains("rust:") && from[0].ends_with("AS build"),
        "{from:?}"
    );
    assert!(
        from[1].starts_with("gcr.io/distroless/"),
        "distroless runtime: {from:?}"
    );
    assert!(from[1].ends_with(":nonroot"), "{from:?}");
    let runs: String = ins
        .iter()
        .filter(|(o, _)| o == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(runs.contains("cargo build --release --locked --bin floatover"));
    assert!(
        runs.contains("strip target/release/floatover"),
        "the binary is stripped"
    );
    let last_from = ins.iter().rposition(|(o, _)| o == "FROM").expect("FROM");
    let run_stage = &ins[last_from..];
    assert!(
        run_stage.iter().all(|(o, _)| o != "RUN"),
        "nothing runs in the runtime stage (no shell there)"
    );
    let user = run_stage
        .iter()
        .find(|(o, _)| o == "USER")
        .map(|(_, a)| a.as_str());
    // The chart's podSecurityContext runs as 65532 (distroless' nonroot).
    assert_eq!(user, Some("65532:65532"));
    let entry = run_stage
        .iter()
        .find(|(o, _)| o == "ENTRYPOINT")
        .map(|(_, a)| a.as_str());
    assert_eq!(entry, Some(r#"["/usr/local/bin/floatover"]"#));
    let copy = run_stage
        .iter()
        .find(|(o, _)| o == "COPY")
        .map(|(_, a)| a.as_str());
    assert_eq!(
        copy,
        Some("--from=build /src/target/release/floatover /usr/local/bin/floatover")
    );
}

#[test]
fn the_chart_runs_the_image_as_its_user() {
    let values = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/floatover/values.yaml"
    ))
    .expect("values");
    assert!(
        values.contains("runAsUser: 65532"),
        "chart and image agree on the UID"
    );
}
