//! A run's task, a new leader taking over an interrupted run, and what the status and
//! metrics show of the sites.

use super::*;

pub(super) fn spawn(cx: &SiteCx, site: &SiteSpec, epoch: u64, id: String) -> RunTask {
    let ex = Executor::new(cx.clone(), site.clone(), epoch, id);
    tokio::spawn(ex.run())
}

/// A new leader's first look at the record: a run left running is resumed (or stopped,
/// when its interrupted step must not run twice).
pub(super) async fn take_over(
    cx: &SiteCx,
    epoch: u64,
) -> Result<(SiteRuns, Option<(String, SiteSpec)>), StoreError> {
    let sites = cx.spec.sites.clone();
    let now = unix_ms();
    let (runs, resumed) = update(cx.store.as_ref(), epoch, |r| {
        let run = r.current.as_mut()?;
        let Some(site) = sites.iter().find(|s| s.name == run.site) else {
            r.finish(RunState::Failed, Some("its site is no longer in the config".into()), now);
            return None;
        };
        match resume(run, &site.run_steps(run.kind == RunKind::Drill)) {
            Resume::Continue => Some((run.id.clone(), site.clone())),
            Resume::Stop { step } => {
                let msg = format!("stopped after a leader change: step {step} was interrupted and is not safe to run twice");
                r.finish(RunState::Failed, Some(msg), now);
                None
            }
        }
    })
    .await?;
    if let Some((id, _)) = &resumed {
        tracing::warn!(run = %id, "resuming the promotion a previous leader left running");
    }
    Ok((runs, resumed))
}

/// Targets of `site` that are up, as the engine's probes see them.
pub(crate) fn up_targets(cx: &SiteCx, site: &SiteSpec) -> usize {
    site.targets
        .iter()
        .filter(|(g, t)| {
            cx.board.get(&TargetKey {
                group: g.clone(),
                target: t.clone(),
            }) == Health::Up
        })
        .count()
}

pub(super) fn publish(cx: &SiteCx, runs: &SiteRuns, readiness: &BTreeMap<String, Readiness>) {
    let sites = &cx.spec.sites;
    let active = runs.active(sites);
    let v: Vec<SiteStatus> = sites
        .iter()
        .map(|s| {
            let up = up_targets(cx, s);
            let rd = readiness.get(&s.name);
            cx.metrics
                .set_site_active(&s.name, active == Some(s.name.as_str()));
            SiteStatus {
                name: s.name.clone(),
                tier: s.tier.as_str().into(),
                region: s.region.clone(),
                primary: s.primary,
                active: active == Some(s.name.as_str()),
                targets_up: up,
                targets: s.targets.len(),
                quorum: s.quorum_count(),
                healthy: decide::at_quorum(s, up),
                ready: rd.map(|r| r.ready),
                not_ready: rd.map(|r| r.problems.clone()).unwrap_or_default(),
                preflight_unix_ms: rd.map(|r| r.checked_unix_ms),
                rpo_ms: s
                    .data
                    .as_ref()
                    .and_then(|d| d.rpo)
                    .map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
                lag_ms: rd.and_then(|r| r.lag_ms),
                lag_error: rd.and_then(|r| r.lag_error.clone()),
                run: runs
                    .current
                    .iter()
                    .chain(runs.history.iter().rev())
                    .find(|r| r.site == s.name)
                    .cloned(),
            }
        })
        .collect();
    publish_status(&cx.status, v);
}

pub(super) fn publish_status(status: &StatusStore, v: Vec<SiteStatus>) {
    match serde_json::to_value(v) {
        Ok(v) => status.set_sites(v),
        Err(e) => tracing::error!(error = %e, "cannot render the sites' status"),
    }
}
