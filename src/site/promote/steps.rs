//! The built-in steps that wait on the provider, on probes or on a person.

use super::{Executor, StepError};
use crate::engine::Command;
use crate::model::{GroupName, Health, TargetKey};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

impl Executor {
    pub(super) async fn start_instances(&self, limit: Duration) -> Result<String, StepError> {
        let deadline = Instant::now() + limit;
        let ids = &self.site.instances;
        self.permit()?;
        self.cx.ops.start_instances(&self.site.region, ids).await?;
        loop {
            self.permit()?;
            let states: std::collections::BTreeMap<String, String> = self
                .cx
                .ops
                .describe_instances(&self.site.region, ids)
                .await?
                .into_iter()
                .map(|(k, v)| (k, v.state))
                .collect();
            let missing: Vec<&String> = ids.iter().filter(|i| !states.contains_key(*i)).collect();
            if !missing.is_empty() {
                return Err(StepError::Unmet(format!(
                    "instance(s) not found: {missing:?}"
                )));
            }
            let not_running: Vec<String> = ids
                .iter()
                .filter(|i| states.get(*i).map(String::as_str) != Some("running"))
                .map(|i| format!("{i} {}", states.get(i).map(String::as_str).unwrap_or("?")))
                .collect();
            if not_running.is_empty() {
                return Ok(format!("{} instance(s) running", ids.len()));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Unmet(format!(
                    "not running after {}: {}",
                    humantime::format_duration(limit),
                    not_running.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(super) fn up_targets(&self) -> usize {
        crate::site::supervisor::up_targets(&self.cx, &self.site)
    }

    /// What `shift` will need up that is not: the site's traffic targets, as the engine's
    /// probes see them (a switchover refuses an unhealthy target).
    fn traffic_down(&self) -> Vec<String> {
        self.site
            .traffic
            .iter()
            .filter(|(g, t)| {
                self.cx.board.get(&TargetKey {
                    group: g.clone(),
                    target: t.clone(),
                }) != Health::Up
            })
            .map(|(g, t)| format!("{g}/{t}"))
            .collect()
    }

    /// The site's targets (at least `min` up, as the engine's probes see them), what the
    /// run launched (probed here, see `launched_healthy`), and the traffic targets that
    /// `shift` moves to.
    pub(super) async fn wait_healthy(
        &self,
        min: usize,
        limit: Duration,
    ) -> Result<String, StepError> {
        let deadline = Instant::now() + limit;
        let launched = self.launched_healthy(deadline).await?;
        let mut changed = self.cx.board.subscribe();
        loop {
            let up = self.up_targets();
            let enough = self.site.targets.is_empty() || up >= min;
            let down = self.traffic_down();
            if enough && down.is_empty() {
                if self.site.targets.is_empty() {
                    return Ok(launched);
                }
                let t = format!("{up} of {} target(s) up", self.site.targets.len());
                return Ok(if launched.is_empty() {
                    t
                } else {
                    format!("{launched}; {t}")
                });
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let mut why = Vec::new();
                    if !enough {
                        why.push(format!(
                            "{up} of {} target(s) up after {}, {min} needed",
                            self.site.targets.len(),
                            humantime::format_duration(limit)
                        ));
                    }
                    if !down.is_empty() {
                        why.push(format!(
                            "traffic target(s) not up after {}: {}",
                            humantime::format_duration(limit),
                            down.join(", ")
                        ));
                    }
                    return Err(StepError::Unmet(why.join("; ")));
                }
                _ = changed.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    pub(super) async fn shift(&self, limit: Duration) -> Result<String, StepError> {
        let mut done = Vec::new();
        for (g, t) in &self.site.traffic {
            let (reply, rx) = oneshot::channel();
            self.permit()?;
            self.cx
                .commands
                .send(Command::Switchover {
                    group: GroupName(g.0.clone()),
                    to: t.clone(),
                    reply,
                })
                .await
                .map_err(|_| "the engine has stopped".to_string())?;
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(Ok(_))) => done.push(format!("{g} -> {t}")),
                Ok(Ok(Err(e))) => return Err(StepError::Unmet(format!("{g} -> {t}: {e}"))),
                Ok(Err(_)) => {
                    return Err(StepError::Unmet(format!(
                        "{g} -> {t}: the engine dropped the request"
                    )));
                }
                Err(_) => {
                    return Err(StepError::Unmet(format!(
                        "{g} -> {t}: not done within {}",
                        humantime::format_duration(limit)
                    )));
                }
            }
        }
        Ok(done.join(", "))
    }

    /// The site holds its traffic (each group's owner is its target, as the engine last
    /// observed) and is healthy (its quorum is up).
    pub(super) async fn verify(&self, limit: Duration) -> Result<String, StepError> {
        let deadline = Instant::now() + limit;
        loop {
            let groups = self.cx.status.groups();
            let off: Vec<String> = self
                .site
                .traffic
                .iter()
                .filter(|(g, t)| {
                    !groups
                        .iter()
                        .any(|x| x.name == g.0 && x.owner.as_ref() == Some(t))
                })
                .map(|(g, t)| format!("{g} is not on {t}"))
                .collect();
            let (up, need) = (self.up_targets(), self.site.quorum_count());
            let healthy = self.site.targets.is_empty() || up >= need;
            if off.is_empty() && healthy {
                return Ok(format!(
                    "traffic on {} ({}); {up} of {} target(s) up",
                    self.site.name,
                    self.site
                        .traffic
                        .iter()
                        .map(|(g, t)| format!("{g} -> {t}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.site.targets.len()
                ));
            }
            if Instant::now() >= deadline {
                let mut why = off;
                if !healthy {
                    why.push(format!(
                        "{up} of {} target(s) up, {need} needed",
                        self.site.targets.len()
                    ));
                }
                return Err(StepError::Unmet(why.join("; ")));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub(super) async fn approval(&self, limit: Duration) -> Result<String, StepError> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.cx.approvals.notify.notified();
            if self.cx.approvals.take(&self.site.name) {
                let name = self.site.name.clone();
                let _ = self.save(|r| r.approved.push(name)).await;
                return Ok("approved".into());
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(StepError::Unmet(format!(
                        "not approved within {} (floatover promote {} --approve)",
                        humantime::format_duration(limit),
                        self.site.name
                    )));
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
