//! Command line: parse, dispatch, and the client commands (`status`, `switchover`).
//! `run` and `plan` live in [`crate::runtime`].

use crate::config;
pub use crate::logging::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "floatover",
    version,
    about = "Floating-IP failover controller: probes your servers and, from a fenced leader, moves Elastic IPs, secondary private IPs and route-table entries onto healthy ones.",
    after_help = "Start with `floatover check -c floatover.yaml`, then `floatover plan -c floatover.yaml` to see what it would do, then `floatover run`."
)]
pub struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, env = "FLOATOVER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the controller: probe targets, elect a leader, move floats on failure.
    /// SIGTERM/SIGINT stops mutating, then releases the lease so a standby takes over at once.
    Run {
        /// Config file (YAML); see examples/floatover.yaml.
        #[arg(short, long, env = "FLOATOVER_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print every problem with its field path (exit 1 if any).
    Check {
        /// Config file (YAML) to validate.
        #[arg(short, long, env = "FLOATOVER_CONFIG")]
        config: PathBuf,
    },
    /// Dry run: probe every target, read provider state, print what would change now.
    /// Never mutates anything.
    Plan {
        /// Config file (YAML) to plan for.
        #[arg(short, long, env = "FLOATOVER_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a running controller's view: leader, target health, float holders, recent moves.
    Status {
        /// Any replica's API: a URL or host:port.
        #[arg(long, env = "FLOATOVER_API", default_value = "http://127.0.0.1:9090")]
        api: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the leader to move GROUP's floats to TARGET now (a person's decision: it is not
    /// undone by failback; it ends when TARGET becomes unhealthy or by another switchover).
    Switchover {
        /// Group name, as in the config (`groups[].name`).
        group: String,
        /// Target to move to (`groups[].targets[].name`); must be healthy.
        target: String,
        /// The leader's API: a URL or host:port.
        #[arg(long, env = "FLOATOVER_API", default_value = "http://127.0.0.1:9090")]
        api: String,
        /// Bearer token (api.token of the controller).
        #[arg(long, env = "FLOATOVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

/// Parse arguments and run; the exit code tells scripts what happened
/// (0 ok, 1 invalid input or refused request, 2 usage error, 3 runtime failure).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let code = rt.block_on(dispatch(cli));
    // Do not wait for blocking work (a DNS lookup, a stuck exec probe) after "stopped".
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Check { config } => check(&config),
        Cmd::Run { config } => crate::runtime::run(&config, cli.log_format).await,
        Cmd::Plan { config, json } => crate::runtime::plan(&config, json).await,
        Cmd::Status { api, json } => status(&api, json).await,
        Cmd::Switchover {
            group,
            target,
            api,
            token,
        } => switchover(&api, &group, &target, token).await,
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(spec) => {
            let floats: usize = spec.groups.iter().map(|g| g.floats.len()).sum();
            let targets: usize = spec.groups.iter().map(|g| g.targets.len()).sum();
            println!(
                "{}: ok ({} group(s), {targets} target(s), {floats} float(s))",
                path.display(),
                spec.groups.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

fn http() -> Result<reqwest::Client, ExitCode> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(90))
        .build()
        .map_err(|e| {
            eprintln!("error: cannot build HTTP client: {e}");
            ExitCode::from(3)
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

async fn status(api: &str, json: bool) -> ExitCode {
    let client = match http() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = match api_url(api, &["api", "v1", "status"]) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let body: serde_json::Value = match client.get(url.clone()).send().await {
        Ok(r) => match r.json().await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {url} did not return JSON: {e}");
                return ExitCode::from(3);
            }
        },
        Err(e) => {
            eprintln!("error: {}", unreachable(&url, &e));
            return ExitCode::from(3);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    print!("{}", crate::runtime::render_status(&body));
    ExitCode::SUCCESS
}

async fn switchover(api: &str, group: &str, target: &str, token: Option<String>) -> ExitCode {
    let Some(token) = token else {
        eprintln!("error: --token (or $FLOATOVER_TOKEN) is required for switchover");
        return ExitCode::from(1);
    };
    let client = match http() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = match api_url(api, &["api", "v1", "groups", group, "switchover"]) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
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
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {}", unreachable(&url, &e));
            ExitCode::from(3)
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
