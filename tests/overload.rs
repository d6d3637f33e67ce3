//! (11) Overload never looks like failure: more probes than one core can run on schedule
//! against a perfectly healthy server give zero false downs, the overload is reported,
//! and SIGTERM still stops the process within its shutdown deadline.

use floatover_devkit::LocalStack;
use floatover_devkit::replica::{Replica, Stderr, free_port, metric_sum};
use std::fmt::Write;
use std::process::Command;
use std::time::{Duration, Instant};

const TARGETS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_beyond_capacity_never_mark_a_healthy_server_down() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    // The server gets core 1 (this process), floatover core 0.
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .output();
    // A lean server, so that it is never the bottleneck: the test is about the
    // controller's own CPU (an axum server on one core could not answer all the probes
    // one core of a floatover sends, and its timeouts would be real ones).
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let server_url = floatover_devkit::health::lean_responder(served).expect("server");
    let port = free_port();
    let mut y = String::new();
    let _ = writeln!(
        y,
        "api: {{ listen: \"127.0.0.1:{port}\" }}\naws: {{ region: us-east-1, endpoint_url: \"{}\" }}\nleader: {{ backend: single }}\nprobe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }}\ngroups:\n  - name: many\n    floats: [{{ eip: {{ allocation_id: eipalloc-overload }} }}]\n    targets:",
        ls.endpoint
    );
    for i in 0..TARGETS {
        let _ = writeln!(
            y,
            "      - {{ name: t{i}, instance_id: i-{i:08x}, probes: [{{ http: {{ url: \"{}\" }} }}] }}",
            server_url
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_floatover"));
    // Pin floatover to core 0 through a tiny wrapper script.
    let wrapper = dir.path().join("pinned");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec taskset -c 0 {} \"$@\"\n", bin.display()),
    )
    .expect("wrapper");
    let _ = Command::new("chmod").arg("+x").arg(&wrapper).status();
    let r = Replica::spawn_with(&wrapper, dir.path(), "busy", &y, port, &[], Stderr::LogFile)
        .expect("spawn");

    let mut downs_max = 0.0f64;
    let mut overloaded = 0.0f64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(m) = r.metrics().await else { continue };
        let down = m
            .lines()
            .filter(|l| l.starts_with("floatover_target_health{") && l.ends_with(" 0"))
            .count() as f64;
        downs_max = downs_max.max(down);
        overloaded = overloaded.max(metric_sum(&m, "floatover_overloaded", &|_| true));
    }
    let m = r.metrics().await.unwrap_or_default();
    let skipped = metric_sum(&m, "floatover_probe_skipped_total", &|_| true);
    let probes = metric_sum(&m, "floatover_probe_duration_seconds_count", &|_| true);
    let failures = metric_sum(&m, "floatover_probe_failures_total", &|_| true);
    let transitions_down = r
        .log_events("target health changed")
        .iter()
        .filter(|e| e["health"] == "down")
        .count();
    eprintln!(
        "{TARGETS} targets at 100 ms on one core for 20 s: {probes} probes counted, {failures} failures, {skipped} discarded as local lag, max targets down at once {downs_max}, down transitions {transitions_down}, overloaded seen: {overloaded}"
    );
    assert!(
        overloaded > 0.0 || skipped > 0.0,
        "the test must actually overload the controller"
    );
    if transitions_down > 0 {
        let mut why: std::collections::HashMap<String, usize> = Default::default();
        for e in r.log_events("probe failed") {
            let w = e["why"]
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(60)
                .collect::<String>();
            *why.entry(w).or_default() += 1;
        }
        eprintln!("failure reasons: {why:?}");
    }
    assert_eq!(transitions_down, 0, "false downs against a healthy server");
    assert_eq!(downs_max, 0.0);

    let t = Instant::now();
    r.signal("TERM");
    let mut code = None;
    while t.elapsed() < Duration::from_secs(10) {
        if let Some(st) = r.child_status() {
            code = st.code();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t.elapsed();
    eprintln!("SIGTERM under overload: exit {code:?} after {took:?}");
    // Shutdown deadline: call timeout 1.5 s + retry 0.5 s + 3 s.
    assert!(
        code.is_some() && took <= Duration::from_secs(6),
        "{code:?} after {took:?}"
    );
}
