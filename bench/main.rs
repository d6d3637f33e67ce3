//! floatover benchmarks: `bench/run` builds in release mode and runs this. Prints the
//! numbers and writes `bench/RESULTS.md` (machine, date, percentiles, pass/fail against
//! the targets of issue 2). `--quick` runs fewer trials (for a smoke check only).

mod decision;
mod eip;
mod stats;
mod takeover;

use floatover::devkit::{LocalStack, use_test_credentials};
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

#[tokio::main]
async fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_dec, n_eip, n_take) = if quick { (200, 5, 3) } else { (2_000, 30, 12) };
    use_test_credentials();
    let mut all: Vec<Series> = vec![];

    eprintln!("decision latency: {n_dec} trials ...");
    all.push(decision::run(n_dec).await);
    eprintln!("{}", all[0].row());

    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("EIP failover on LocalStack: {n_eip} trials ...");
    match eip::run(&ls.endpoint, n_eip).await {
        Ok(r) => {
            eprintln!("{}\n{}", r.overhead.row(), r.total.row());
            all.push(r.overhead);
            all.push(r.total);
        }
        Err(e) => eprintln!("EIP failover bench failed: {e}"),
    }
    eprintln!("leader takeover after kill -9: {n_take} trials ...");
    match takeover::run(&ls.endpoint, n_take).await {
        Ok(s) => {
            eprintln!("{}", s.row());
            all.push(s);
        }
        Err(e) => eprintln!("takeover bench failed: {e}"),
    }
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
    let _ = writeln!(md, "\nWhat each line measures:\n");
    for s in &all {
        let _ = writeln!(md, "- **{}**: {}.", s.name, s.note);
    }
    println!("\n{md}");
    let failed = all.iter().any(|s| s.passed() == Some(false)) || all.len() < 4;
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
