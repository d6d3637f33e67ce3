//! What the CLI prints for people: the status of a running controller.

/// "1.2s", "3m 4s", "2h 5m": an age from milliseconds, for people.
fn age(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 10_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => {
            let secs = ms / 1000;
            let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
            if h > 0 {
                format!("{h}h {m}m")
            } else if m > 0 {
                format!("{m}m {s}s")
            } else {
                format!("{s}s")
            }
        }
    }
}

/// Human rendering of `GET /api/v1/status`.
pub(super) fn status(body: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let l = &body["leader"];
    let lease = &body["lease"];
    let _ = writeln!(
        s,
        "replica {} - {} (epoch {}, lease holder {}{})",
        l["identity"].as_str().unwrap_or("?"),
        if l["is_leader"].as_bool().unwrap_or(false) {
            "LEADER"
        } else {
            "standby"
        },
        l["epoch"],
        l["holder"].as_str().unwrap_or("none"),
        lease["holder_api"]
            .as_str()
            .map(|a| format!(" at {a}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "lease store: last answered {} ago{}",
        age(lease["last_ok_ms_ago"].as_u64()),
        lease["last_error"]
            .as_str()
            .map(|e| format!(", last error: {e}"))
            .unwrap_or_default()
    );
    for w in body["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "WARNING {}", w.as_str().unwrap_or("?"));
    }
    if let Some(e) = body["observe_error"].as_str() {
        let _ = writeln!(s, "provider observation failing: {e}");
    }
    for g in body["groups"].as_array().into_iter().flatten() {
        let desired = g["desired"].as_str();
        let owner = g["owner"].as_str();
        let _ = writeln!(
            s,
            "group {}: owner {}, desired {}",
            g["name"].as_str().unwrap_or("?"),
            owner.unwrap_or("(none)"),
            desired.unwrap_or("(none healthy)")
        );
        if desired != owner {
            let why: Vec<String> = g["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["note"].as_str().map(|k| k.replace('_', " ")))
                .collect();
            let _ = writeln!(
                s,
                "  not on its desired owner: {}",
                if why.is_empty() {
                    "a move is under way or waits for the next reconcile".to_string()
                } else {
                    why.join(", ")
                }
            );
        }
        for t in g["targets"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "  target {:<16} prio {:<4} {:<8} for {:<8} {}",
                t["name"].as_str().unwrap_or("?"),
                t["priority"],
                t["health"].as_str().unwrap_or("?"),
                age(t["for_ms"].as_u64()),
                t["last_error"].as_str().unwrap_or("")
            );
        }
        for f in g["floats"].as_array().into_iter().flatten() {
            let holder = f["holder"]["id"]
                .as_str()
                .unwrap_or(f["holder"]["kind"].as_str().unwrap_or("?"));
            let _ = writeln!(
                s,
                "  float  {:<40} on {}",
                f["id"].as_str().unwrap_or("?"),
                holder
            );
        }
        for n in g["notes"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    let now = crate::status::unix_ms();
    for e in body["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(10)
    {
        let ago = e["finished_unix_ms"]
            .as_u64()
            .map(|t| age(Some(now.saturating_sub(t))))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {} {} {} -> {} ({}, epoch {}, {:.1} ms, {} ago){}{}",
            if e["reason"] == "drift" {
                "drift"
            } else {
                "move"
            },
            e["float"].as_str().unwrap_or("?"),
            e["from"]["id"].as_str().unwrap_or("-"),
            e["to"].as_str().unwrap_or("(elsewhere)"),
            e["reason"].as_str().unwrap_or("?"),
            e["epoch"],
            e["call_ms"].as_f64().unwrap_or(0.0),
            ago,
            e["detail"]
                .as_str()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
            if e["ok"].as_bool().unwrap_or(false) {
                String::new()
            } else {
                format!(" FAILED: {}", e["error"].as_str().unwrap_or(""))
            }
        );
    }
    s
}
