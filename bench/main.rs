//! floatover benchmarks: `bench/run` builds in release mode and runs this. Prints the
//! numbers and writes `bench/RESULTS.md` (machine, date, percentiles, pass/fail against
//! the targets of issue 2). `--quick` runs fewer trials (for a smoke check only).

mod data;
mod decision;
mod dns;
mod eip;
mod mass;
mod mass_cli;
mod probes;
mod quorum;
mod region;
mod sites;
mod stats;
mod takeover;
mod votes;

use floatover_devkit::LocalStack;
use stats::{HEADER, Series};
use std::fmt::Write;
use std::process::{Command, ExitCode};

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    let sh = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{} ({cores} cores, {mem} GiB), {}, {}",
        cpu,
        sh("uname", &["-srm"]),
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    )
}

const SITES_HEADER: &str = "## Warm site promotion";
const QUORUM_HEADER: &str = "## Quorum lease";

/// The quorum section of RESULTS.md (just before the site section).
fn quorum_section(
    r: &Result<quorum::QuorumBench, String>,
    region: &Result<region::RegionBench, String>,
) -> String {
    let mut md = format!(
        "{QUORUM_HEADER}\n\nThree S3 buckets in three regions on LocalStack, each reached through its own fault proxy adding 5, 30 and 150 ms; the quorum lease in process. Then the region scenario of `tests/region_loss.rs` with three `floatover run` processes. Command: `bench/run` (or `bench/run --quorum` for this section alone).\n\n{HEADER}\n"
    );
    if let Err(e) = region {
        let _ = writeln!(md, "\nregion bench failed: {e}");
    }
    match r {
        Ok(b) => {
            let mut all: Vec<&Series> = b.members.iter().chain([&b.renewal, &b.takeover]).collect();
            if let Ok(g) = region {
                all.extend([&g.shifted, &g.run, &g.outside]);
            }
            for s in &all {
                let _ = writeln!(md, "{}", s.row());
            }
            let _ = writeln!(md);
            for s in &all {
                let _ = writeln!(md, "- **{}**: {}.", s.name, s.note);
            }
        }
        Err(e) => {
            let _ = writeln!(md, "\nquorum bench failed: {e}");
        }
    }
    md
}

fn quorum_passed(
    r: &Result<quorum::QuorumBench, String>,
    region: &Result<region::RegionBench, String>,
) -> bool {
    r.as_ref()
        .is_ok_and(|b| b.renewal.passed() == Some(true) && b.takeover.passed() == Some(true))
        && region
            .as_ref()
            .is_ok_and(|g| g.outside.passed() == Some(true))
}

/// `bench/run --quorum`: the quorum bench alone; replaces its section of RESULTS.md.
async fn quorum_only() -> ExitCode {
    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = quorum::run(&ls.endpoint, 200, 5).await;
    eprintln!("region loss -> DR site shifted ...");
    let region = region::run(3).await;
    drop(ls);
    let section = quorum_section(&r, &region);
    println!("{section}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let (head, sites) = match old.split_once(&format!("\n{SITES_HEADER}")) {
        Some((a, b)) => (a.to_string(), format!("{SITES_HEADER}{b}")),
        None => (old.clone(), String::new()),
    };
    let head = head
        .split_once(&format!("\n{QUORUM_HEADER}"))
        .map(|(a, _)| a.to_string())
        .unwrap_or(head);
    let text = format!("{}\n\n{section}\n{sites}", head.trim_end());
    if let Err(e) = std::fs::write(&path, text.trim_end().to_string() + "\n") {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", path.display());
    if quorum_passed(&r, &region) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The site section of RESULTS.md (its last section, so `--sites` can replace it).
fn site_section(
    r: &Result<sites::SiteBench, String>,
    data: &Result<data::DataBench, String>,
) -> String {
    let mut md = format!(
        "{SITES_HEADER}\n\nTwo regions on LocalStack, `floatover run` (release) on the S3 lease, site west (us-west-2, warm: one stopped standby) promoted through the API, then east promoted back. Then a warm promotion with data: RDS, ECS, EKS and CloudWatch on moto, a fresh replica each trial. Command: `bench/run` (or `bench/run --sites` for this section alone).\n\n{HEADER}\n"
    );
    let mut all: Vec<&Series> = Vec::new();
    if let Ok(b) = r {
        all.extend(
            std::iter::once(&b.total)
                .chain(&b.steps)
                .chain([&b.overhead]),
        );
    }
    if let Ok(d) = data {
        all.extend(
            std::iter::once(&d.total)
                .chain(&d.steps)
                .chain([&d.overhead]),
        );
    }
    for s in &all {
        let _ = writeln!(md, "{}", s.row());
    }
    let _ = writeln!(md);
    for s in &all {
        let _ = writeln!(md, "- **{}**: {}.", s.name, s.note);
    }
    if let Err(e) = r {
        let _ = writeln!(md, "\nsite promotion bench failed: {e}");
    }
    if let Err(e) = data {
        let _ = writeln!(md, "\nwarm promotion with data bench failed: {e}");
    }
    md
}

fn site_passed(
    r: &Result<sites::SiteBench, String>,
    data: &Result<data::DataBench, String>,
) -> bool {
    r.as_ref()
        .is_ok_and(|b| b.overhead.passed() == Some(true) && !b.total.samples_ms.is_empty())
        && data
            .as_ref()
            .is_ok_and(|d| d.overhead.passed() == Some(true) && !d.total.samples_ms.is_empty())
}

/// The data trials need moto beside LocalStack.
async fn data_bench(endpoint: &str, trials: usize) -> Result<data::DataBench, String> {
    let moto = floatover_devkit::Moto::start_or_reuse().map_err(|e| e.to_string())?;
    data::run(endpoint, &moto.endpoint, trials).await
}

/// `bench/run --sites`: the site promotion bench alone; replaces its section of
/// RESULTS.md.
async fn sites_only() -> ExitCode {
    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = sites::run(&ls.endpoint, 10).await;
    eprintln!("warm promotion with data (LocalStack + moto) ...");
    let d = data_bench(&ls.endpoint, 5).await;
    drop(ls);
    let section = site_section(&r, &d);
    println!("{section}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let kept = old
        .split_once(&format!("\n{SITES_HEADER}"))
        .map(|(a, _)| a.to_string())
        .unwrap_or(old);
    if let Err(e) = std::fs::write(&path, format!("{}\n\n{section}", kept.trim_end())) {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", path.display());
    if site_passed(&r, &d) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `bench/run --votes`: what health votes cost, alone (prints; does not write
/// RESULTS.md).
async fn votes_only() -> ExitCode {
    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = votes::run(&ls.endpoint, 8).await;
    drop(ls);
    match r {
        Ok((single, voted)) => {
            println!("{HEADER}\n{}\n{}\n", single.row(), voted.row());
            println!(
                "- **{}**: {}.\n- **{}**: {}.",
                single.name, single.note, voted.name, voted.note
            );
            if voted.passed() == Some(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("health votes bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `bench/run --probes`: the probe throughput bench alone (does not write RESULTS.md).
async fn probes_only() -> ExitCode {
    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = probes::run(&ls.endpoint, 1_000, std::time::Duration::from_secs(20)).await;
    drop(ls);
    match r {
        Ok(t) => {
            println!("{}", t.table());
            if t.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("probe throughput bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--probes") {
        return probes_only().await;
    }
    if std::env::args().any(|a| a == "--sites") {
        return sites_only().await;
    }
    if std::env::args().any(|a| a == "--quorum") {
        return quorum_only().await;
    }
    if std::env::args().any(|a| a == "--votes") {
        return votes_only().await;
    }
    if std::env::args().any(|a| a == "--mass") {
        return mass_cli::only().await;
    }
    let (n_dec, n_eip, n_take) = if quick { (200, 5, 3) } else { (2_000, 30, 12) };
    let mut all: Vec<Series> = vec![];

    eprintln!("decision latency: {n_dec} trials ...");
    all.push(decision::run(n_dec).await);
    eprintln!("{}", all[0].row());
    eprintln!("DNS decision latency: {n_dec} trials ...");
    all.push(decision::run_dns(n_dec).await);
    eprintln!("{}", all[1].row());

    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let variants = [
        eip::Variant {
            label: "standard",
            interval_ms: 200,
            fast_interval_ms: None,
            fencing: "standard",
        },
        eip::Variant {
            label: "strict fencing",
            interval_ms: 200,
            fast_interval_ms: None,
            fencing: "strict",
        },
        eip::Variant {
            label: "slow probes without fast_interval",
            interval_ms: 1_000,
            fast_interval_ms: None,
            fencing: "standard",
        },
        eip::Variant {
            label: "slow probes with fast_interval",
            interval_ms: 1_000,
            fast_interval_ms: Some(100),
            fencing: "standard",
        },
    ];
    let mut eip_series = 0;
    let mut calls_lines = Vec::new();
    for v in &variants {
        eprintln!(
            "EIP failover on LocalStack, {}: {n_eip} trials ...",
            v.label
        );
        match eip::run(&ls.endpoint, n_eip, v).await {
            Ok(r) => {
                eprintln!("{}\n{}", r.overhead.row(), r.total.row());
                calls_lines.push(format!(
                    "| {} (fencing {}) | {:.1} |",
                    v.label, v.fencing, r.calls
                ));
                all.push(r.overhead);
                all.push(r.total);
                eip_series += 2;
            }
            Err(e) => eprintln!("EIP failover bench ({}) failed: {e}", v.label),
        }
    }
    eprintln!("leader takeover after kill -9: {n_take} trials ...");
    match takeover::run(&ls.endpoint, n_take).await {
        Ok(s) => {
            eprintln!("{}", s.row());
            all.push(s);
        }
        Err(e) => eprintln!("takeover bench failed: {e}"),
    }
    eprintln!("DNS reweight of 100 targets on LocalStack ...");
    let mut dns_lines = Vec::new();
    match dns::run(&ls.endpoint, 100, if quick { 4 } else { 20 }).await {
        Ok(r) => {
            eprintln!("{}\n{}", r.call.row(), r.insync.row());
            dns_lines.push(format!(
                "Batches per reweight of 100 targets: {:.2} (one per zone per decision).",
                r.batches_per_change
            ));
            all.push(r.call);
            all.push(r.insync);
        }
        Err(e) => dns_lines.push(format!("DNS reweight bench failed: {e}")),
    }
    eprintln!("probe throughput: 1,000 HTTP targets at 100 ms for 20 s ...");
    let throughput = probes::run(&ls.endpoint, 1_000, std::time::Duration::from_secs(20)).await;
    eprintln!("health votes on LocalStack ...");
    match votes::run(&ls.endpoint, if quick { 2 } else { 8 }).await {
        Ok((single, voted)) => {
            eprintln!("{}\n{}", single.row(), voted.row());
            all.push(single);
            all.push(voted);
        }
        Err(e) => eprintln!("health votes bench failed: {e}"),
    }
    eprintln!("quorum lease on LocalStack ...");
    let quorum_bench = quorum::run(
        &ls.endpoint,
        if quick { 30 } else { 200 },
        if quick { 1 } else { 5 },
    )
    .await;
    eprintln!("region loss -> DR site shifted ...");
    let region_bench = region::run(if quick { 1 } else { 3 }).await;
    eprintln!("warm site promotion on LocalStack ...");
    let site_bench = sites::run(&ls.endpoint, if quick { 2 } else { 10 }).await;
    eprintln!("warm promotion with data (LocalStack + moto) ...");
    let data_bench = data_bench(&ls.endpoint, if quick { 1 } else { 5 }).await;
    drop(ls);

    let mut md = String::new();
    let _ = writeln!(md, "# floatover benchmark results\n");
    let _ = writeln!(md, "Machine: {}  ", machine());
    let _ = writeln!(
        md,
        "Build: release. Command: `bench/run`{}.\n",
        if quick {
            " --quick (smoke run, too few trials to judge)"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "{HEADER}");
    for s in &all {
        let _ = writeln!(md, "{}", s.row());
    }
    let _ = writeln!(
        md,
        "\nProvider round trips until the float is on the new holder (mean over the trials):\n"
    );
    let _ = writeln!(md, "| variant | round trips |\n|---|---|");
    for l in &calls_lines {
        let _ = writeln!(md, "{l}");
    }
    for l in &dns_lines {
        let _ = writeln!(md, "\n{l}");
    }
    let _ = writeln!(
        md,
        "\nProbe throughput and memory (`floatover run`, release, both cores shared with a minimal HTTP responder in the bench process; probes counted where they arrive):\n"
    );
    match &throughput {
        Ok(t) => {
            let _ = writeln!(md, "{}", t.table());
        }
        Err(e) => {
            let _ = writeln!(md, "probe throughput bench failed: {e}");
        }
    }
    let _ = writeln!(md, "\nWhat each line measures:\n");
    for s in &all {
        let _ = writeln!(md, "- **{}**: {}.", s.name, s.note);
    }
    let _ = write!(md, "\n{}", quorum_section(&quorum_bench, &region_bench));
    let _ = write!(md, "\n{}", site_section(&site_bench, &data_bench));
    println!("\n{md}");
    let failed = all.iter().any(|s| s.passed() == Some(false))
        || eip_series < 2 * variants.len()
        || all.len() < 5 + 2 * variants.len()
        || dns_lines
            .iter()
            .any(|l| l.contains("failed") || !l.contains(" 1.00 "))
        || throughput.as_ref().map_or(true, |t| !t.passed())
        || !site_passed(&site_bench, &data_bench)
        || !quorum_passed(&quorum_bench, &region_bench);
    if !quick {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
        if let Err(e) = std::fs::write(&path, &md) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
