//! Probe throughput and memory: the release binary runs `targets` HTTP probes at 100 ms
//! against one health endpoint in this process for `duration`; probes per second come
//! from its own metrics, resident memory from /proc.
//!
//! The endpoint is the devkit's minimal HTTP/1.1 responder on one thread, not its axum
//! server: the bench shares two cores with floatover, and it should measure floatover,
//! not the cost of a web framework on the other side.

use floatover_devkit::replica::{Replica, Stderr, free_port, metric_sum};
use std::fmt::Write;
use std::time::Duration;

pub struct Throughput {
    pub targets: usize,
    pub probes_per_s: f64,
    pub skipped_per_s: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

impl Throughput {
    /// 10,000/s is the full schedule of 1,000 targets at 100 ms, so it cannot be exceeded;
    /// counting over a window is exact only to a probe per target at its two edges
    /// (±0.1% over 20 s), which is the tolerance allowed here.
    pub fn passed(&self) -> bool {
        self.probes_per_s >= 10_000.0 * 0.999 && self.peak_rss_mib <= 30.0
    }

    pub fn table(&self) -> String {
        format!(
            "| targets | probes/s | discarded (local lag)/s | RSS MiB | peak RSS MiB | target | result |\n|---|---|---|---|---|---|---|\n| {} | {:.1} | {:.0} | {:.1} | {:.1} | >= 10,000/s (the full schedule, ±0.1% window edges), <= 30 MiB | {} |",
            self.targets,
            self.probes_per_s,
            self.skipped_per_s,
            self.rss_mib,
            self.peak_rss_mib,
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

fn rss_kib(pid: u32, field: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub async fn run(endpoint: &str, targets: usize, duration: Duration) -> Result<Throughput, String> {
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let server =
        floatover_devkit::health::lean_responder(served.clone()).map_err(|e| e.to_string())?;
    let port = free_port();
    let mut y = String::new();
    let _ = writeln!(
        y,
        "api: {{ listen: \"127.0.0.1:{port}\" }}\naws: {{ region: us-east-1, endpoint_url: \"{endpoint}\" }}\nleader: {{ backend: single }}\nprobe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }}\ngroups:\n  - name: many\n    floats: [{{ eip: {{ allocation_id: eipalloc-throughput }} }}]\n    targets:"
    );
    for i in 0..targets {
        let _ = writeln!(
            y,
            "      - {{ name: t{i}, instance_id: i-{i:08x}, probes: [{{ http: {{ url: \"{}\" }} }}] }}",
            server
        );
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = floatover_devkit::replica::floatover_bin();
    let r = Replica::spawn_with(
        &bin,
        dir.path(),
        "throughput",
        &y,
        port,
        &[],
        Stderr::LogFile,
    )
    .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let pid = r.pid().ok_or("no pid")?;
    // Warm up, then count over the window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let skipped = |m: &str| metric_sum(m, "floatover_probe_skipped_total", &|_| true);
    // Probes are counted where they arrive (a metrics scrape of 1,000 histograms takes
    // 50-150 ms, too coarse a clock for a 20 s window); discarded probes from metrics.
    let served_now = || served.load(std::sync::atomic::Ordering::Relaxed) as f64;
    let m0 = r.metrics().await.ok_or("no metrics")?;
    let s0 = skipped(&m0);
    let diag = |m: &str| {
        format!(
            "late starts {}, probes {}, failures {}",
            metric_sum(m, "floatover_probe_late_starts_total", &|_| true),
            metric_sum(m, "floatover_probe_duration_seconds_count", &|_| true),
            metric_sum(m, "floatover_probe_failures_total", &|_| true),
        )
    };
    eprintln!("before: {}", diag(&m0));
    let (p0, t0) = (served_now(), std::time::Instant::now());
    tokio::time::sleep(duration).await;
    let (p1, t1) = (served_now(), std::time::Instant::now());
    let m1 = r.metrics().await.ok_or("no metrics")?;
    let s1 = skipped(&m1);
    eprintln!("after: {}", diag(&m1));
    let secs = (t1 - t0).as_secs_f64();
    let rss = rss_kib(pid, "VmRSS:").unwrap_or(f64::NAN) / 1024.0;
    let peak = rss_kib(pid, "VmHWM:").unwrap_or(f64::NAN) / 1024.0;
    drop(r);
    Ok(Throughput {
        targets,
        probes_per_s: (p1 - p0) / secs,
        skipped_per_s: (s1 - s0) / secs,
        rss_mib: rss,
        peak_rss_mib: peak,
    })
}
