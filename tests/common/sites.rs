//! Two-region DR site scenarios for the site tests: LocalStack seeded in us-east-1 and
//! us-west-2, the west standby stopped, a weighted record, a "boot" task, the config.

use super::bin;
use floatover::site::supervisor::SiteStatus;
pub use floatover_devkit::eventually::eventually;
use floatover_devkit::replica::Replica;
// Not every test binary that includes this module uses all of these.
#[allow(unused_imports)]
pub use floatover_devkit::sites::{Sites, TOKEN, config, instance_state, sites, weights};
use serde_json::Value;
use std::time::Duration;

pub async fn site_api(r: &Replica) -> Value {
    r.get("/api/v1/sites")
        .await
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or_default()
}

/// One site of a `GET /api/v1/sites` answer as JSON (for the run's deeper fields).
pub fn json_of<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["sites"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

/// One site of a `GET /api/v1/sites` answer, typed (a site missing from the answer, or
/// an answer that is not one, reads as a site that is nothing: not active, no run).
pub fn site(v: &Value, name: &str) -> SiteStatus {
    serde_json::from_value(json_of(v, name).clone()).unwrap_or_else(|_| SiteStatus {
        name: name.into(),
        tier: String::new(),
        region: String::new(),
        primary: false,
        active: false,
        targets_up: 0,
        targets: 0,
        quorum: 0,
        healthy: false,
        ready: None,
        not_ready: vec![],
        preflight_unix_ms: None,
        rpo_ms: None,
        lag_ms: None,
        lag_error: None,
        run: None,
    })
}

/// Start replica r0 on the sites config (`extra_steps` added to west's plan) and wait
/// until it leads with east active (fails the test otherwise).
pub async fn spawn_steady(s: &Sites, west_url: &str, extra_steps: &str) -> Replica {
    let port = floatover_devkit::replica::free_port();
    let cfg = config(s, port, west_url, extra_steps);
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    let steady = eventually(Duration::from_secs(20), async || {
        site(&site_api(&r).await, "east").active && leads(&r).await
    })
    .await
    .is_some();
    assert!(steady, "not steady: {}", site_api(&r).await);
    r
}

pub async fn leads(r: &Replica) -> bool {
    r.leads().await
}

pub fn cli(r: &Replica, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(bin())
        .arg("promote")
        .args(args)
        .args(["--api", &r.api, "--token", TOKEN])
        .output()
        .expect("run floatover promote");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn step_state(v: &Value, site_name: &str, step: &str) -> String {
    json_of(v, site_name)["run"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == step)
        .and_then(|s| s["state"].as_str())
        .unwrap_or("")
        .to_string()
}
