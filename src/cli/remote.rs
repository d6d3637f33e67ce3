//! The client commands: `status` and `switchover` talk to a running controller's API.

use crate::exit::Exit;
use std::process::ExitCode;

/// How long `status` waits for an answer.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// No total timeout on the client: a switchover answers within the controller's own
/// `switchover_timeout` (the one setting for how long a switchover may take), so the CLI
/// never gives up before the server does. Connecting is bounded.
fn http() -> Result<reqwest::Client, ExitCode> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| {
            eprintln!("error: cannot build HTTP client: {e}");
            Exit::Failure.into()
        })
}

/// `host:port` or a URL → a base URL; path segments are appended URL-encoded.
pub fn api_url(api: &str, segments: &[&str]) -> Result<reqwest::Url, String> {
    let base = if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    };
    let mut url = reqwest::Url::parse(&base)
        .map_err(|e| format!("--api {api:?} is not a URL or host:port: {e}"))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "--api {api:?} must be http(s)://host:port or host:port"
        ));
    }
    {
        let mut p = url
            .path_segments_mut()
            .map_err(|_| format!("--api {api:?} cannot take a path"))?;
        p.pop_if_empty();
        for s in segments {
            p.push(s);
        }
    }
    Ok(url)
}

/// A transport error in words: the usual cause is that nothing listens there.
fn unreachable(url: &reqwest::Url, e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut cause: &dyn Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if e.is_connect() && text.to_lowercase().contains("refused") {
        format!("connection refused at {url}: is floatover running? (--api URL)")
    } else if e.is_timeout() {
        format!("no answer from {url} in time")
    } else {
        format!("cannot reach {url}: {text}")
    }
}

pub(super) async fn status(api: &str, json: bool) -> ExitCode {
    let client = match http() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = match api_url(api, &["api", "v1", "status"]) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid.into();
        }
    };
    let text = match client.get(url.clone()).timeout(STATUS_TIMEOUT).send().await {
        Ok(r) => match r.text().await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: reading the answer of {url}: {e}");
                return Exit::Failure.into();
            }
        },
        Err(e) => {
            eprintln!("error: {}", unreachable(&url, &e));
            return Exit::Failure.into();
        }
    };
    if json {
        // The server's own document, pretty-printed, whatever its version.
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or(text)),
            Err(e) => {
                eprintln!("error: {url} did not return JSON: {e}");
                return Exit::Failure.into();
            }
        }
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<crate::api::StatusBody>(&text) {
        Ok(body) => {
            print!("{}", super::render::status(&body));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {url} did not return a floatover status ({e}); try --json to see it");
            Exit::Failure.into()
        }
    }
}

pub(super) async fn switchover(
    api: &str,
    group: &str,
    target: &str,
    token: Option<String>,
) -> ExitCode {
    let Some(token) = token else {
        eprintln!("error: --token (or $FLOATOVER_TOKEN) is required for switchover");
        return Exit::Invalid.into();
    };
    let client = match http() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = match api_url(api, &["api", "v1", "groups", group, "switchover"]) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid.into();
        }
    };
    let resp = client
        .post(url.clone())
        .bearer_auth(token)
        .json(&serde_json::json!({ "to": target }))
        .send()
        .await;
    match resp {
        Ok(r) => {
            let code = r.status();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if code.is_success() {
                let n = body["moved"].as_array().map(|a| a.len()).unwrap_or(0);
                println!("switchover of {group} to {target}: done ({n} float move(s))");
                for e in body["moved"].as_array().into_iter().flatten() {
                    println!(
                        "  {} {} -> {} in {:.1} ms (epoch {})",
                        e["float"].as_str().unwrap_or("?"),
                        e["from"]["id"].as_str().unwrap_or("-"),
                        e["to"].as_str().unwrap_or("-"),
                        e["call_ms"].as_f64().unwrap_or(0.0),
                        e["epoch"]
                    );
                }
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "switchover refused ({code}): {}",
                    body["error"].as_str().unwrap_or("no reason given")
                );
                Exit::Invalid.into()
            }
        }
        Err(e) => {
            eprintln!("error: {}", unreachable(&url, &e));
            Exit::Failure.into()
        }
    }
}

/// `floatover drill SITE`: start the drill, follow it to the end of its failback, write
/// the report.
pub(super) async fn drill(
    api: &str,
    site: &str,
    out: &std::path::Path,
    timeout: std::time::Duration,
    token: Option<String>,
) -> ExitCode {
    let Some(token) = token else {
        eprintln!("error: --token (or $FLOATOVER_TOKEN) is required for drill");
        return Exit::Invalid.into();
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("error: cannot create {}: {e}", out.display());
        return Exit::Invalid.into();
    }
    let client = match http() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (start, sites) = match (
        api_url(api, &["api", "v1", "sites", site, "promote"]),
        api_url(api, &["api", "v1", "sites"]),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Invalid.into();
        }
    };
    let resp = client
        .post(start.clone())
        .bearer_auth(token)
        .json(&serde_json::json!({ "drill": true }))
        .send()
        .await;
    let id = match resp {
        Ok(r) if r.status().is_success() => {
            let b: serde_json::Value = r.json().await.unwrap_or_default();
            b["run"].as_str().unwrap_or_default().to_string()
        }
        Ok(r) => {
            let code = r.status();
            let b: serde_json::Value = r.json().await.unwrap_or_default();
            eprintln!(
                "drill refused ({code}): {}",
                b["error"].as_str().unwrap_or("no reason given")
            );
            return Exit::Invalid.into();
        }
        Err(e) => {
            eprintln!("error: {}", unreachable(&start, &e));
            return Exit::Failure.into();
        }
    };
    println!("drill of {site} started: run {id}");
    let Some((drill, failback)) = follow_drill(&client, sites, &id, timeout).await else {
        eprintln!(
            "error: the drill did not finish within {}; it goes on on the leader",
            floatover_core::human::duration(timeout)
        );
        return Exit::Failure.into();
    };
    let report = crate::site::report::build(&drill, failback.as_ref());
    if let Err(code) = write_report(&report, out, &id) {
        return code;
    }
    if report.verdict == "passed" {
        ExitCode::SUCCESS
    } else {
        if let Some(e) = &report.error {
            eprintln!("drill failed: {e}");
        }
        Exit::Failure.into()
    }
}

/// Poll the sites API until the drill and its failback have ended (None: not by `timeout`).
async fn follow_drill(
    client: &reqwest::Client,
    sites: reqwest::Url,
    id: &str,
    timeout: std::time::Duration,
) -> Option<(
    crate::site::record::RunRecord,
    Option<crate::site::record::RunRecord>,
)> {
    use crate::site::record::{RunRecord, RunState};
    let deadline = tokio::time::Instant::now() + timeout;
    let runs = |v: &serde_json::Value| -> Vec<RunRecord> {
        v["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| serde_json::from_value(s["run"].clone()).ok())
            .collect()
    };
    let done = loop {
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Ok(r) = client.get(sites.clone()).send().await else {
            continue;
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let all = runs(&v);
        let Some(d) = all.iter().find(|r| r.id == id).cloned() else {
            continue;
        };
        match d.state {
            RunState::Running => continue,
            RunState::Failed => break (d, None),
            RunState::Succeeded => {
                if let Some(f) = all.iter().find(|r| r.drill_of.as_deref() == Some(id))
                    && f.state != RunState::Running
                {
                    break (d, Some(f.clone()));
                }
            }
        }
    };
    Some(done)
}

/// The report as JSON, Markdown and SVG beside each other, and a line that says where.
fn write_report(
    report: &crate::site::report::DrillReport,
    out: &std::path::Path,
    id: &str,
) -> Result<(), ExitCode> {
    let base = out.join(format!("drill-{id}"));
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    let files = [
        (base.with_extension("json"), json),
        (
            base.with_extension("md"),
            crate::site::report::markdown(report),
        ),
        (base.with_extension("svg"), crate::site::report::svg(report)),
    ];
    for (p, text) in &files {
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("error: cannot write {}: {e}", p.display());
            return Err(Exit::Failure.into());
        }
    }
    println!(
        "drill {}: recovery {} (RTO {}); report: {}",
        report.verdict.to_uppercase(),
        report
            .recovery_ms
            .map(|m| format!("{:.2} s", m as f64 / 1000.0))
            .unwrap_or_else(|| "-".into()),
        report
            .rto_ms
            .map(|m| format!("{:.0} s", m as f64 / 1000.0))
            .unwrap_or_else(|| "none".into()),
        files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `floatover promote SITE [--approve] [--dry-run]`.
pub(super) async fn promote(
    api: &str,
    site: &str,
    approve: bool,
    dry_run: bool,
    token: Option<String>,
) -> ExitCode {
    let Some(token) = token else {
        eprintln!("error: --token (or $FLOATOVER_TOKEN) is required for promote");
        return Exit::Invalid.into();
    };
    let client = match http() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let action = if approve { "approve" } else { "promote" };
    let url = match api_url(api, &["api", "v1", "sites", site, action]) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid.into();
        }
    };
    let mut req = client.post(url.clone()).bearer_auth(token);
    if dry_run {
        req = req.json(&serde_json::json!({ "dry_run": true }));
    }
    match req.send().await {
        Ok(r) => {
            let code = r.status();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if !code.is_success() {
                eprintln!(
                    "{action} refused ({code}): {}",
                    body["error"].as_str().unwrap_or("no reason given")
                );
                return Exit::Invalid.into();
            }
            for w in body["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            if approve {
                println!("approved: the promotion of {site} goes on");
            } else if dry_run {
                match serde_json::from_value::<crate::site::outline::SitePlan>(body["plan"].clone())
                {
                    Ok(p) => print!("{}", crate::site::outline::text(&[p])),
                    Err(_) => println!("{}", body["plan"]),
                }
            } else {
                println!(
                    "promotion of {site} started: run {} (follow it with floatover status, or GET /api/v1/sites)",
                    body["run"].as_str().unwrap_or("?")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", unreachable(&url, &e));
            Exit::Failure.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::api_url;

    #[test]
    fn api_urls() {
        let u = api_url("127.0.0.1:9090", &["api", "v1", "status"]).expect("url");
        assert_eq!(u.as_str(), "http://127.0.0.1:9090/api/v1/status");
        let u = api_url(
            "http://h:1/",
            &["api", "v1", "groups", "a b/c", "switchover"],
        )
        .expect("url");
        assert_eq!(u.as_str(), "http://h:1/api/v1/groups/a%20b%2Fc/switchover");
        assert!(api_url("ftp://h:1", &[]).is_err());
        assert!(api_url("http://", &[]).is_err());
    }
}
