//! `bench/run --mass`: runs the mass-failover scenarios of [`crate::mass`] and writes
//! `bench/MASS.md`.

use crate::mass;
use floatover_devkit::LocalStack;
use std::process::ExitCode;

/// `bench/run --mass`: mass failover on LocalStack (100 and 500 EIPs, one replica and
/// three); writes `bench/MASS.md`.
pub async fn only() -> ExitCode {
    let ls = match LocalStack::start_or_reuse() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot start LocalStack: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `--only 500x3` runs one scenario and writes nothing (to chase a failure).
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mut results = Vec::new();
    for (groups, replicas, region) in [
        (100, 1, "us-east-1"),
        (100, 3, "us-east-2"),
        (500, 1, "us-west-1"),
        (500, 3, "us-west-2"),
    ] {
        if only
            .as_ref()
            .is_some_and(|o| *o != format!("{groups}x{replicas}"))
        {
            continue;
        }
        eprintln!("mass failover: {groups} EIPs, {replicas} replica(s) ...");
        let r = mass::run(&ls.endpoint, region, groups, replicas).await;
        match &r {
            Ok(m) => eprintln!("{}", m.row()),
            Err(e) => eprintln!("  failed: {e}"),
        }
        results.push(r);
    }
    if only.is_some() {
        let ok = results
            .iter()
            .all(|r| r.as_ref().is_ok_and(mass::MassResult::passed));
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    eprintln!("mass reweight: 500 weighted records over 5 zones ...");
    let dns = mass::run_dns(&ls.endpoint, 500, 5).await;
    match &dns {
        Ok(d) => eprintln!("{}", d.row()),
        Err(e) => eprintln!("  failed: {e}"),
    }
    drop(ls);
    let mut md = mass::report(&results, &super::machine());
    md.push_str("\nRoute 53: 500 active-active weighted record sets (a primary and a standby member each) over 5 hosted zones, the controller in process at Route 53's five requests a second; every primary fails at once. Changes that wait for a zone share its next batch.\n\n| scenario | all reweighted | batches | read back | |\n|---|---|---|---|---|\n");
    match &dns {
        Ok(d) => md.push_str(&format!("{}\n", d.row())),
        Err(e) => md.push_str(&format!("| failed: {e} |||||\n")),
    }
    println!("{md}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/MASS.md");
    if let Err(e) = std::fs::write(&path, &md) {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", path.display());
    if results
        .iter()
        .all(|r| r.as_ref().is_ok_and(mass::MassResult::passed))
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
