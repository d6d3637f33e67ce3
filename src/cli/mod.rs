//! Command line: parse and dispatch. `run` lives in [`crate::runtime`]; the dry run in
//! [`plan`]; the client commands (`status`, `switchover`) in [`remote`], and the text they
//! print in [`render`].

mod plan;
mod remote;
mod render;

pub use remote::api_url;

use crate::config;
use crate::exit::Exit;
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
        /// FloatGroup manifests (YAML, one or more documents per file) to check together
        /// with the config's settings, as the controller would take them: each refused
        /// object is named with its field and reason (exit 1). For CI before
        /// `kubectl apply`.
        #[arg(long = "floatgroups", value_name = "FILE")]
        floatgroups: Vec<PathBuf>,
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
    /// Practice: promote SITE, verify it took the traffic and is healthy, fail back to the
    /// site that had the traffic, and write a report (Markdown, JSON, SVG timeline) with
    /// every step against its budget and the recovery against the RTO. Exit 0 when the
    /// drill passed.
    Drill {
        /// Site name, as in the config (`sites[].name`).
        site: String,
        /// Directory for the report files.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Give up waiting after this long (the run itself goes on on the leader).
        #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// The leader's API: a URL or host:port.
        #[arg(long, env = "FLOATOVER_API", default_value = "http://127.0.0.1:9090")]
        api: String,
        /// Bearer token (api.token of the controller).
        #[arg(long, env = "FLOATOVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Promote a site: run its promotion plan (`floatover plan` shows it) on the leader.
    /// With --approve, approve the step of a running promotion that waits for a person.
    Promote {
        /// Site name, as in the config (`sites[].name`).
        site: String,
        /// Approve the waiting approval step instead of starting a promotion.
        #[arg(long, conflicts_with = "dry_run")]
        approve: bool,
        /// Show the plan the leader would run; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The leader's API: a URL or host:port.
        #[arg(long, env = "FLOATOVER_API", default_value = "http://127.0.0.1:9090")]
        api: String,
        /// Bearer token (api.token of the controller).
        #[arg(long, env = "FLOATOVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

/// Parse arguments and run; the exit code tells scripts what happened
/// (see [`crate::exit::Exit`]: 0 ok, 1 invalid input or refused request, 2 usage error,
/// 3 runtime failure, 70 panic, 130 second signal).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let code = rt.block_on(dispatch(cli));
    // Do not wait for blocking work (a DNS lookup, a stuck exec probe) after "stopped".
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Check {
            config,
            floatgroups,
        } if !floatgroups.is_empty() => check_objects(&config, &floatgroups),
        Cmd::Check { config, .. } => check(&config),
        Cmd::Run { config } => crate::bootstrap::run(&config, cli.log_format).await,
        Cmd::Plan { config, json } => plan::plan(&config, json).await,
        Cmd::Status { api, json } => remote::status(&api, json).await,
        Cmd::Switchover {
            group,
            target,
            api,
            token,
        } => remote::switchover(&api, &group, &target, token).await,
        Cmd::Drill {
            site,
            out,
            timeout,
            api,
            token,
        } => remote::drill(&api, &site, &out, timeout, token).await,
        Cmd::Promote {
            site,
            approve,
            dry_run,
            api,
            token,
        } => remote::promote(&api, &site, approve, dry_run, token).await,
    }
}

/// `check --floatgroups`: the objects assembled with the config's settings.
fn check_objects(path: &std::path::Path, files: &[PathBuf]) -> ExitCode {
    use crate::crd::source::{Found, assemble, decode};
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read config file {}: {e}", path.display());
            return Exit::Invalid.into();
        }
    };
    let base = match config::from_yaml(&text).and_then(|_| config::parse_raw(&text)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return Exit::Invalid.into();
        }
    };
    let mut found = Vec::new();
    let mut bad = false;
    for f in files {
        let docs = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                serde_saphyr::from_multiple::<serde_json::Value>(&t).map_err(|e| e.to_string())
            });
        let docs = match docs {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                bad = true;
                continue;
            }
        };
        for (i, d) in docs.iter().enumerate().filter(|(_, d)| !d.is_null()) {
            if d["kind"] != "FloatGroup" {
                eprintln!(
                    "{} document {}: not a FloatGroup (kind: {}); skipped",
                    f.display(),
                    i + 1,
                    d["kind"]
                );
                continue;
            }
            let Some(name) = d["metadata"]["name"].as_str() else {
                eprintln!(
                    "{} document {}: metadata.name: required",
                    f.display(),
                    i + 1
                );
                bad = true;
                continue;
            };
            let raw = d["spec"].clone();
            found.push(Found {
                name: name.to_string(),
                uid: None,
                generation: None,
                spec: decode(name, &raw),
                raw,
            });
        }
    }
    let a = assemble(&base, &found, &Default::default(), &|k| {
        std::env::var(k).ok()
    });
    if let Err(e) = &a.spec {
        eprintln!("{}: {e}", path.display());
        return Exit::Invalid.into();
    }
    for (name, o) in &a.objects {
        match &o.rejected {
            Some(why) => {
                eprintln!("{why}");
                bad = true;
            }
            None => println!("FloatGroup {name}: ok"),
        }
    }
    if bad {
        Exit::Invalid.into()
    } else {
        ExitCode::SUCCESS
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(spec) if spec.group_source != config::GroupSource::File => {
            println!(
                "{}: ok (groups come from FloatGroup objects; check manifests with --floatgroups FILE)",
                path.display()
            );
            ExitCode::SUCCESS
        }
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
            Exit::Invalid.into()
        }
    }
}
