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
                    floatover_core::human::duration(limit),
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
                            floatover_core::human::duration(limit)
                        ));
                    }
                    if !down.is_empty() {
                        why.push(format!(
                            "traffic target(s) not up after {}: {}",
                            floatover_core::human::duration(limit),
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

    /// Move every traffic group of the site onto its target. A group whose move fails
    /// (Route 53's change API throttled, failing or unreachable) is tried again, with a
    /// growing pause, until the step's budget: each failed attempt is written into the
    /// step's detail, so status says what is failing while the step still runs, and the
    /// step fails with the last error at the budget instead of hanging or passing.
    /// Returns the outcome and the attempts made.
    pub(super) async fn shift(
        &self,
        name: &str,
        limit: Duration,
    ) -> (Result<String, StepError>, u32) {
        let deadline = Instant::now() + limit;
        let mut pending: Vec<(GroupName, crate::model::TargetId)> = self
            .site
            .traffic
            .iter()
            .map(|(g, t)| (GroupName(g.0.clone()), t.clone()))
            .collect();
        let mut done = Vec::new();
        let mut attempt: u32 = 0;
        let started_ms = super::unix_ms();
        // One attempt waits this long for the engine (which keeps trying the move itself
        // while the switchover is pending) before the step looks at why and says so.
        let slice = self
            .cx
            .spec
            .aws
            .call_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1));
        loop {
            attempt += 1;
            let mut failed = Vec::new();
            for (g, t) in pending {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.switch(&g, &t, left.min(slice)).await {
                    Ok(()) => done.push(format!("{g} -> {t}")),
                    Err(StepError::Unmet(why)) => {
                        let why = match self.last_move_error(&g, started_ms) {
                            Some(e) => format!("{why}; last move failed: {e}"),
                            None => why,
                        };
                        failed.push((g, t, why));
                    }
                    Err(stop) => return (Err(stop), attempt),
                }
            }
            if failed.is_empty() {
                return (Ok(done.join(", ")), attempt);
            }
            let words: Vec<String> = failed.iter().map(|(_, _, w)| w.clone()).collect();
            let words = words.join("; ");
            if let Err(e) = self.again(name, attempt, &words, deadline, limit).await {
                return (Err(e), attempt);
            }
            pending = failed.into_iter().map(|(g, t, _)| (g, t)).collect();
        }
    }

    /// Set ARC routing controls: every cluster endpoint in turn, and again with a growing
    /// pause while none answers, until the step's limit; a refusal (a safety rule, a
    /// missing permission) ends the step at once in the provider's words. Each failed
    /// round is written into the step's detail while it runs.
    pub(super) async fn routing_controls(
        &self,
        name: &str,
        cluster: &[crate::provider::aws::arc::ClusterEndpoint],
        on: &[String],
        off: &[String],
        overrides: &[String],
        limit: Duration,
    ) -> (Result<String, StepError>, u32) {
        use crate::provider::aws::arc::{ArcCluster, ArcError};
        let deadline = Instant::now() + limit;
        let aws = &self.cx.spec.aws;
        let arc = ArcCluster::connect(cluster, aws.call_timeout, aws.credentials.clone()).await;
        let gate = || self.permit();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if let Err(e) = self.permit() {
                return (Err(e.into()), attempt);
            }
            let r = arc.set(on, off, overrides, &gate).await;
            let words = match r {
                Ok(endpoint) => {
                    return (
                        Ok(format!(
                            "{} on, {} off through {endpoint}",
                            on.len(),
                            off.len()
                        )),
                        attempt,
                    );
                }
                Err(ArcError::Fenced(f)) => return (Err(f.into()), attempt),
                Err(e @ ArcError::Refused { .. }) => {
                    return (Err(StepError::Unmet(e.to_string())), attempt);
                }
                Err(e @ ArcError::Unavailable { .. }) => e.to_string(),
            };
            if let Err(e) = self.again(name, attempt, &words, deadline, limit).await {
                return (Err(e), attempt);
            }
        }
    }

    /// Between two attempts of a retrying step: fail with `words` when a growing pause
    /// would end past `deadline`; otherwise say in the step's detail that attempt
    /// `attempt` failed and why (status shows it while the step runs), and pause.
    async fn again(
        &self,
        name: &str,
        attempt: u32,
        words: &str,
        deadline: Instant,
        limit: Duration,
    ) -> Result<(), StepError> {
        let pause = Duration::from_millis(250u64 << attempt.min(3));
        if Instant::now() + pause >= deadline {
            return Err(StepError::Unmet(format!(
                "{words} (attempt {attempt}; no time left for another within {})",
                floatover_core::human::duration(limit)
            )));
        }
        tracing::warn!(site = %self.site.name, step = name, attempt, error = %words, "step attempt failed; trying again within the step's limit");
        self.note(
            name,
            format!("attempt {attempt} failed: {words}; trying again"),
        )
        .await
        .map_err(StepError::Stop)?;
        tokio::time::sleep(pause).await;
        Ok(())
    }

    /// The error of the group's last failed move since `since_ms` (the audit trail), in
    /// the provider's words (`op in region: Code: message`).
    fn last_move_error(&self, g: &GroupName, since_ms: u64) -> Option<String> {
        self.cx
            .status
            .audit()
            .into_iter()
            .rev()
            .find(|e| e.group == *g && !e.ok && e.started_unix_ms >= since_ms)
            .and_then(|e| e.error)
    }

    /// One group's switchover through the engine, waited for at most `limit`.
    async fn switch(
        &self,
        g: &GroupName,
        t: &crate::model::TargetId,
        limit: Duration,
    ) -> Result<(), StepError> {
        let (reply, rx) = oneshot::channel();
        self.permit()?;
        self.cx
            .commands
            .send(Command::Switchover {
                group: g.clone(),
                to: t.clone(),
                reply,
            })
            .await
            .map_err(|_| "the engine has stopped".to_string())?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(StepError::Unmet(format!("{g} -> {t}: {e}"))),
            Ok(Err(_)) => Err(StepError::Unmet(format!(
                "{g} -> {t}: the engine dropped the request"
            ))),
            Err(_) => Err(StepError::Unmet(format!(
                "{g} -> {t}: not done within {}",
                floatover_core::human::duration(limit)
            ))),
        }
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
                        floatover_core::human::duration(limit),
                        self.site.name
                    )));
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
