//! EIP failover on LocalStack: the real engine, probes and EC2 provider in-process (as
//! `floatover run` wires them), real health endpoints killed one after the other. Overhead
//! above the detection floor = from the fall-threshold crossing to the float being on the
//! new holder (AssociateAddress; under strict fencing DisassociateAddress +
//! AssociateAddress). Variants: probe timing (with and without `fast_interval`) and
//! fencing mode.

use crate::stats::{Series, ms};
use floatover::config;
use floatover::engine::Engine;
use floatover::leader::Leadership;
use floatover::metrics::Metrics;
use floatover::model::{GroupName, Health, TargetId};
use floatover::probe::{self, Checker, HealthBoard, TargetKey};
use floatover::provider::aws::AwsProvider;
use floatover::status::StatusStore;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Scenario, free_port, render_config};
use floatover_devkit::seed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct EipResult {
    pub overhead: Series,
    pub total: Series,
    /// Mean provider round trips until the float was on the new holder.
    pub calls: f64,
}

/// One benchmark configuration.
pub struct Variant {
    pub label: &'static str,
    pub interval_ms: u64,
    pub fast_interval_ms: Option<u64>,
    pub fencing: &'static str,
}

pub async fn run(endpoint: &str, trials: usize, v: &Variant) -> Result<EipResult, String> {
    let world = seed::world(
        endpoint,
        "us-east-1",
        2,
        &format!("bench-{}", std::process::id()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let clients = seed::clients(endpoint, "us-east-1").await;
    let mut health = [
        HealthServer::start().await.map_err(|e| e.to_string())?,
        HealthServer::start().await.map_err(|e| e.to_string())?,
    ];
    let sc = Scenario {
        s3_lease: false,
        preempt: false,
        min_hold_ms: 0,
        interval_ms: v.interval_ms,
        fast_interval_ms: v.fast_interval_ms,
        fencing: v.fencing,
        fall: 3,
        rise: 2,
        resync_ms: 10_000,
        ..Default::default()
    };
    let urls: Vec<String> = health.iter().map(|h| h.url()).collect();
    let mut spec = config::from_yaml(&render_config(&world, &sc, &urls, free_port(), "bench"))
        .map_err(|e| e.to_string())?;
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let spec = Arc::new(spec);
    let metrics = Arc::new(Metrics::new());
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let status = Arc::new(StatusStore::default());
    let provider = Arc::new(
        AwsProvider::connect(&spec.aws, &["us-east-1".to_string()], metrics.clone()).await,
    );
    let leadership = Leadership::always_leader("bench");
    let stop = CancellationToken::new();
    let checker = Checker::new().map_err(|e| e.to_string())?;
    let _probes = probe::spawn_all(&spec, board.clone(), checker, metrics.clone(), stop.clone());
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let engine = Engine::new(
        spec.clone(),
        provider,
        board.clone(),
        leadership,
        metrics,
        status.clone(),
        rx,
    );
    let task = tokio::spawn(engine.run(stop.clone()));

    let names = ["primary", "standby"];
    let key = |i: usize| TargetKey {
        group: GroupName("web".into()),
        target: TargetId(names[i].into()),
    };
    let wait = |pred: Box<dyn Fn() -> bool + Send>, secs: u64| async move {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if pred() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    };
    let st = status.clone();
    if !wait(Box::new(move || st.audit().iter().any(|e| e.ok)), 20).await {
        return Err("initial assignment did not happen".into());
    }
    let mut holder = 0usize;
    let (mut overhead, mut total, mut calls) = (vec![], vec![], vec![]);
    // (decision, provider call) of each trial: says which side a slow trial spent its time on.
    let mut parts: Vec<(f64, f64)> = vec![];
    for _ in 0..trials {
        let before = status.audit().len();
        let killed = Instant::now();
        health[holder].stop().await;
        let st = status.clone();
        if !wait(Box::new(move || st.audit().len() > before), 10).await {
            return Err("no failover within 10 s".into());
        }
        let ev = status.audit().pop().ok_or("no audit event")?;
        if !ev.ok {
            return Err(format!("failover failed: {:?}", ev.error));
        }
        overhead.push(ev.decision_ms.unwrap_or(f64::NAN) + ev.call_ms);
        parts.push((ev.decision_ms.unwrap_or(f64::NAN), ev.call_ms));
        calls.push(f64::from(ev.calls));
        // Kill to the new holder being visible through the EC2 API (includes detection).
        let want = world.instances[1 - holder].instance_id.clone();
        while clients.eip_holder(&world.allocation_id).await.as_deref() != Some(want.as_str())
            && killed.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        total.push(ms(killed.elapsed()));
        health[holder].restart().await.map_err(|e| e.to_string())?;
        let (b, k) = (board.clone(), key(holder));
        if !wait(Box::new(move || b.get(&k) == Health::Up), 10).await {
            return Err("restarted endpoint never came back up".into());
        }
        holder = 1 - holder;
    }
    stop.cancel();
    let _ = task.await;
    let mean_calls = calls.iter().sum::<f64>() / calls.len().max(1) as f64;
    let worst =
        parts.iter().copied().fold(
            (0.0f64, 0.0f64),
            |w, p| if p.0 + p.1 > w.0 + w.1 { p } else { w },
        );
    let max_decision = parts.iter().map(|p| p.0).fold(0.0f64, f64::max);
    let probes = match v.fast_interval_ms {
        Some(f) => format!("{} ms x 3, fast_interval {f} ms", v.interval_ms),
        None => format!("{} ms x 3", v.interval_ms),
    };
    Ok(EipResult {
        overhead: Series {
            name: format!("EIP failover overhead above detection floor, {} ({probes}, fencing {})", v.label, v.fencing),
            samples_ms: overhead,
            p99_target_ms: Some(100.0),
            note: format!(
                "fall-threshold crossing -> float on the new holder; {mean_calls:.1} provider round trips on the failover path (the stamp is written after the move); slowest trial: decision {:.3} ms + provider call {:.1} ms; slowest decision {max_decision:.3} ms",
                worst.0, worst.1
            ),
        },
        total: Series {
            name: format!("EIP failover, kill -> new holder visible, {} ({probes}, fencing {})", v.label, v.fencing),
            samples_ms: total,
            p99_target_ms: None,
            note: "includes the detection floor: the probe phase, then fall - 1 further probes (at fast_interval when set)".into(),
        },
        calls: mean_calls,
    })
}
