//! Region loss to DR site shifted, end to end: the region scenario of
//! `tests/region_loss.rs` (`floatover_devkit::region`) with the release binary. us-east-1
//! is lost with the leader in it (its replica starts first and leads), east's servers die,
//! and the clock runs until Route 53 gives west the traffic. The bound is
//! lease + grace + the plan's own waits + 1 s, so the judged number is the time outside
//! the promotion's own run (its record's start to end): takeover, detection, grace and
//! hand-offs, against lease (4 s) + grace (1 s) + 1 s.

use crate::stats::{Series, ms};
use floatover_devkit::eventually::eventually_every;
use floatover_devkit::region::RegionWorld;
use std::time::{Duration, Instant};

pub struct RegionBench {
    pub shifted: Series,
    pub run: Series,
    pub outside: Series,
}

pub async fn run(trials: usize) -> Result<RegionBench, String> {
    let bin = floatover_devkit::replica::floatover_bin();
    let (mut shifted, mut run, mut outside) = (vec![], vec![], vec![]);
    for trial in 0..trials {
        let mut w = RegionWorld::start(&format!("bench-region-{trial}"), &bin).await?;
        w.lose_east().await;
        let lost = Instant::now();
        let took = eventually_every(
            Duration::from_secs(60),
            Duration::from_millis(10),
            async || w.west_has_traffic().await,
        )
        .await
        .ok_or("west never took the traffic")?;
        let _ = lost;
        let mut run_ms = None;
        eventually_every(
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || {
                run_ms = w.west_run_ms().await;
                run_ms.is_some()
            },
        )
        .await;
        let run_ms = run_ms.ok_or("the promotion's record never finished")? as f64;
        eprintln!("  trial {trial}: west has the traffic after {took:?} (promotion {run_ms} ms)");
        shifted.push(ms(took));
        run.push(run_ms);
        outside.push((ms(took) - run_ms).max(0.0));
        w.boot.abort();
    }
    Ok(RegionBench {
        shifted: Series {
            name: "region loss -> DR site shifted".into(),
            samples_ms: shifted,
            p99_target_ms: None,
            note: "three replicas (release) on the quorum lease over a bucket per region, sites east (hot) and west (warm); us-east-1 black-holed with the leader's replica in it killed, east's servers stopped; until Route 53 gives west weight and east none".into(),
        },
        run: Series {
            name: "region loss: the promotion's own run".into(),
            samples_ms: run,
            p99_target_ms: None,
            note: "west's run record, start to end (start_instances, wait_healthy, a hook, shift)".into(),
        },
        outside: Series {
            name: "region loss: time outside the promotion's run".into(),
            samples_ms: outside,
            p99_target_ms: Some(4_000.0 + 1_000.0 + 1_000.0),
            note: "shifted minus the run: takeover (lease 4 s), detection (2 x 400 ms, overlapping the takeover), grace (1 s) and hand-offs. Target: lease + grace + 1 s".into(),
        },
    })
}
