//! The data side of a promotion: the RPO gate, promoting a database replica, and scaling
//! a container service or a node group before traffic moves. Each step is fenced (the
//! permit before every provider call and record write), bounded by its limit, and safe
//! to run again when a new leader resumes it: a replica that is no longer a replica is not
//! promoted again, and setting a count twice sets it once.

use super::{Executor, StepError};
use crate::config::site::data::ClusterMode;
use crate::provider::sites::NodegroupScaling;
use crate::site::lag;
use std::time::Duration;
use tokio::time::Instant;

/// How often a data step polls the provider while it waits.
const POLL: Duration = Duration::from_secs(2);

/// What `promote_cluster` waits for its cluster to become.
#[derive(Clone, Copy)]
enum Role {
    Writer,
    Standalone,
}

/// Region and identifier of `arn:aws:rds:<region>:<account>:cluster:<id>`.
fn arn_region_id(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "rds", region, _, "cluster", id] => Some(((*region).into(), (*id).into())),
        _ => None,
    }
}

impl Executor {
    /// Sleep until the next poll, or fail with `words` once `deadline` is past.
    async fn poll_or(
        &self,
        deadline: Instant,
        limit: Duration,
        words: String,
    ) -> Result<(), StepError> {
        if Instant::now() >= deadline {
            return Err(StepError::Unmet(format!(
                "{words} after {}",
                floatover_core::human::duration(limit)
            )));
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        Ok(())
    }

    /// The RPO gate: the replication lag within the RPO lets the run go on. Over it (or
    /// unreadable), an automatic run waits for a person's approval, re-reading the lag
    /// meanwhile (a lag that falls back within the RPO lets it go on by itself); a run a
    /// person started goes on, and its record says by how much the lag was over.
    pub(super) async fn rpo_gate(&self, name: &str, limit: Duration) -> Result<String, StepError> {
        let Some(data) = self.site.data.clone() else {
            return Ok("no rpo".into());
        };
        let Some(rpo) = data.rpo else {
            return Ok("no rpo".into());
        };
        let automatic = self.current().await?.automatic();
        let deadline = Instant::now() + limit;
        let rpo_words = floatover_core::human::duration(rpo);
        // The detail is written when it changes, not on every reading (one record write
        // per reading would be a PUT every 2 s for as long as nobody answers).
        let mut shown = String::new();
        loop {
            self.permit()?;
            let words = match lag::read(&data, &self.site.region, self.cx.ops.as_ref()).await {
                Ok(l) if l <= rpo => {
                    return Ok(format!(
                        "replication lag {} within the RPO of {rpo_words}",
                        lag::show(l)
                    ));
                }
                Ok(l) => format!(
                    "replication lag {} is over the RPO of {rpo_words}",
                    lag::show(l)
                ),
                Err(e) => format!("replication lag unknown ({e}); the RPO is {rpo_words}"),
            };
            if !automatic {
                return Ok(format!("{words}; promoted by a person anyway"));
            }
            let detail = format!(
                "{words}: waiting for approval (floatover promote {} --approve); writes not yet replicated may be lost",
                self.site.name
            );
            if self
                .approved_or_wait(name, detail, &mut shown, deadline)
                .await?
            {
                return Ok(format!("{words}; approved by a person"));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Unmet(format!(
                    "{words}, and no approval within {}",
                    floatover_core::human::duration(limit)
                )));
            }
        }
    }

    /// One turn of waiting for a person: true once the site's approval is given (and
    /// recorded); else show `detail` in the step (when it changed) and wait for an
    /// approval, a poll interval or `deadline`, whichever comes first.
    async fn approved_or_wait(
        &self,
        name: &str,
        detail: String,
        shown: &mut String,
        deadline: Instant,
    ) -> Result<bool, StepError> {
        if self.cx.approvals.take(&self.site.name) {
            let site = self.site.name.clone();
            self.save(|r| r.approved.push(site)).await?;
            return Ok(true);
        }
        if detail != *shown {
            self.note(name, detail.clone()).await?;
            *shown = detail;
        }
        if Instant::now() < deadline {
            let notified = self.cx.approvals.notify.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        Ok(false)
    }

    /// Aurora Global Database: make the site's cluster the writer. Already the writer,
    /// or already detached (a resumed run, a person): nothing is done again. Planned
    /// (mode `planned`, or `auto` while the current writer answers): a switchover, which
    /// loses nothing. Unplanned: detach the cluster from the global cluster, which makes
    /// it a standalone writer and loses what was not replicated; only with
    /// `allow_data_loss: true` or a person's approval.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn promote_cluster(
        &self,
        name: &str,
        global: &str,
        cluster: &str,
        mode: ClusterMode,
        allow_data_loss: bool,
        limit: Duration,
    ) -> Result<String, StepError> {
        let region = self.site.region.clone();
        let ops = self.cx.ops.clone();
        let deadline = Instant::now() + limit;
        self.permit()?;
        let Some(ours) = ops.db_cluster(&region, cluster).await? else {
            return Err(StepError::Unmet(format!(
                "DB cluster {cluster} not found in {region}"
            )));
        };
        self.permit()?;
        let members = ops
            .global_cluster(&region, global)
            .await?
            .unwrap_or_default();
        match members.iter().find(|m| m.arn == ours.arn) {
            Some(m) if m.writer => {
                return Ok(format!(
                    "{cluster} is already the writer of {global} (not promoted again)"
                ));
            }
            Some(_) => {}
            None => {
                self.until_cluster(
                    &region,
                    global,
                    cluster,
                    &ours.arn,
                    Role::Standalone,
                    deadline,
                    limit,
                )
                .await?;
                return Ok(format!(
                    "{cluster} is already standalone, outside {global} (not promoted again)"
                ));
            }
        }
        let writer = members.iter().find(|m| m.writer).map(|m| m.arn.clone());
        let writer_words = writer
            .as_deref()
            .map(|w| w.rsplit(':').next().unwrap_or(w).to_string())
            .unwrap_or_else(|| "(none)".into());
        let planned = match mode {
            ClusterMode::Planned => true,
            ClusterMode::Unplanned => false,
            ClusterMode::Auto => match writer.as_deref().and_then(arn_region_id) {
                Some((r, id)) => {
                    self.permit()?;
                    matches!(ops.db_cluster(&r, &id).await, Ok(Some(v)) if v.status == "available")
                }
                None => false,
            },
        };
        if planned {
            self.permit()?;
            ops.switchover_global_cluster(&region, global, &ours.arn)
                .await?;
            self.until_cluster(
                &region,
                global,
                cluster,
                &ours.arn,
                Role::Writer,
                deadline,
                limit,
            )
            .await?;
            return Ok(format!(
                "switched over: {cluster} is the writer of {global} (planned, from {writer_words}: nothing lost)"
            ));
        }
        let words = format!(
            "the writer {writer_words} of {global} does not answer: detaching {cluster} makes it a standalone writer and loses the writes not yet replicated"
        );
        let how = if allow_data_loss {
            "allowed by allow_data_loss"
        } else {
            self.data_loss_approved(name, &words, deadline, limit)
                .await?
        };
        self.permit()?;
        ops.detach_from_global_cluster(&region, global, &ours.arn)
            .await?;
        self.until_cluster(
            &region,
            global,
            cluster,
            &ours.arn,
            Role::Standalone,
            deadline,
            limit,
        )
        .await?;
        Ok(format!(
            "detached from {global}: {cluster} is a standalone writer (unplanned, {how}; writes not yet replicated from {writer_words} are lost)"
        ))
    }

    /// An unplanned promotion loses writes: wait for a person's approval until the
    /// deadline.
    async fn data_loss_approved(
        &self,
        name: &str,
        words: &str,
        deadline: Instant,
        limit: Duration,
    ) -> Result<&'static str, StepError> {
        let mut shown = String::new();
        loop {
            let detail = format!(
                "{words}: waiting for approval (floatover promote {} --approve), or set allow_data_loss: true",
                self.site.name
            );
            if self
                .approved_or_wait(name, detail, &mut shown, deadline)
                .await?
            {
                return Ok("approved by a person");
            }
            if Instant::now() >= deadline {
                return Err(StepError::Unmet(format!(
                    "{words}, and no approval within {}",
                    floatover_core::human::duration(limit)
                )));
            }
        }
    }

    /// Wait until the cluster `arn` has `role` in `global` and is available.
    #[allow(clippy::too_many_arguments)]
    async fn until_cluster(
        &self,
        region: &str,
        global: &str,
        cluster: &str,
        arn: &str,
        role: Role,
        deadline: Instant,
        limit: Duration,
    ) -> Result<(), StepError> {
        let ops = self.cx.ops.clone();
        loop {
            self.permit()?;
            let members = ops
                .global_cluster(region, global)
                .await?
                .unwrap_or_default();
            let member = members.iter().find(|m| m.arn == arn);
            self.permit()?;
            let status = ops
                .db_cluster(region, cluster)
                .await?
                .map(|c| c.status)
                .unwrap_or_else(|| "missing".into());
            let there = match role {
                Role::Writer => member.is_some_and(|m| m.writer),
                Role::Standalone => member.is_none(),
            };
            if there && status == "available" {
                return Ok(());
            }
            let now = format!(
                "{cluster}: {status}, {}",
                match member {
                    Some(m) if m.writer => format!("the writer of {global}"),
                    Some(_) => format!("a secondary of {global}"),
                    None => format!("outside {global}"),
                }
            );
            self.poll_or(deadline, limit, now).await?;
        }
    }

    /// Read the lag right before traffic moves and keep it in the record: the writes
    /// this promotion may lose (the measured RPO). A failed reading is logged, never a
    /// reason not to move the traffic.
    pub(super) async fn record_cutover_lag(&self) -> Result<(), StepError> {
        let Some(data) = self.site.data.clone() else {
            return Ok(());
        };
        match lag::read(&data, &self.site.region, self.cx.ops.as_ref()).await {
            Ok(l) => {
                let ms = u64::try_from(l.as_millis()).unwrap_or(u64::MAX);
                self.save(|r| r.lag_at_cutover_ms = Some(ms)).await?;
                tracing::info!(site = %self.site.name, lag_ms = ms, "replication lag at cut-over");
            }
            Err(e) => {
                tracing::warn!(site = %self.site.name, error = %e, "replication lag at cut-over unknown");
            }
        }
        Ok(())
    }

    /// RDS: promote the read replica, then wait until it is a standalone instance and
    /// available. A replica that is already standalone (a resumed run, a person) is not
    /// promoted again.
    pub(super) async fn promote_replica(
        &self,
        instance: &str,
        limit: Duration,
    ) -> Result<String, StepError> {
        let region = self.site.region.clone();
        let deadline = Instant::now() + limit;
        self.permit()?;
        let Some(db) = self.cx.ops.db_instance(&region, instance).await? else {
            return Err(StepError::Unmet(format!(
                "DB instance {instance} not found in {region}"
            )));
        };
        // Only an available replica is promoted: one that is `modifying` is being promoted
        // already (by the leader before us), and is waited for instead.
        let sent = match &db.replica_of {
            Some(source) if db.status == "available" => {
                tracing::info!(site = %self.site.name, %instance, %source, "promoting the read replica");
                self.permit()?;
                self.cx.ops.promote_read_replica(&region, instance).await?;
                true
            }
            _ => false,
        };
        loop {
            self.permit()?;
            let Some(db) = self.cx.ops.db_instance(&region, instance).await? else {
                return Err(StepError::Unmet(format!(
                    "DB instance {instance} disappeared from {region}"
                )));
            };
            if db.replica_of.is_none() && db.status == "available" {
                return Ok(if sent {
                    format!("{instance} promoted and available")
                } else {
                    format!("{instance} was already standalone and available (not promoted again)")
                });
            }
            let now = match &db.replica_of {
                Some(src) => format!("{instance} still a replica of {src} ({})", db.status),
                None => format!("{instance} is {}", db.status),
            };
            self.poll_or(deadline, limit, now).await?;
        }
    }

    /// ECS: set the service's desired count, then wait until that many tasks run and the
    /// deployment is complete.
    pub(super) async fn scale_ecs(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
        limit: Duration,
    ) -> Result<String, StepError> {
        let region = self.site.region.clone();
        let deadline = Instant::now() + limit;
        self.permit()?;
        let Some(s) = self.cx.ops.ecs_service(&region, cluster, service).await? else {
            return Err(StepError::Unmet(format!(
                "ECS service {service} not found in cluster {cluster} ({region})"
            )));
        };
        if s.desired < desired {
            self.permit()?;
            self.cx
                .ops
                .set_ecs_desired(&region, cluster, service, desired)
                .await?;
        }
        let want = desired.max(s.desired);
        loop {
            self.permit()?;
            let Some(s) = self.cx.ops.ecs_service(&region, cluster, service).await? else {
                return Err(StepError::Unmet(format!(
                    "ECS service {service} disappeared from cluster {cluster}"
                )));
            };
            let steady =
                s.deployments <= 1 && s.rollout.as_deref().is_none_or(|r| r == "COMPLETED");
            if s.running >= want && steady {
                return Ok(format!(
                    "{service}: {} of {want} task(s) running",
                    s.running
                ));
            }
            if s.rollout.as_deref() == Some("FAILED") {
                return Err(StepError::Unmet(format!(
                    "{service}: the deployment failed ({} of {want} task(s) running)",
                    s.running
                )));
            }
            let now = format!(
                "{service}: {} of {want} task(s) running, {} pending, {} deployment(s)",
                s.running, s.pending, s.deployments
            );
            self.poll_or(deadline, limit, now).await?;
        }
    }

    /// EKS: set the node group's scaling, then wait until it is `ACTIVE` with it.
    pub(super) async fn scale_eks(
        &self,
        cluster: &str,
        nodegroup: &str,
        scaling: NodegroupScaling,
        limit: Duration,
    ) -> Result<String, StepError> {
        let region = self.site.region.clone();
        let deadline = Instant::now() + limit;
        self.permit()?;
        let Some(n) = self.cx.ops.nodegroup(&region, cluster, nodegroup).await? else {
            return Err(StepError::Unmet(format!(
                "EKS node group {nodegroup} not found in cluster {cluster} ({region})"
            )));
        };
        let done = |v: &crate::provider::sites::NodegroupView| {
            v.desired >= scaling.desired
                && scaling.min.is_none_or(|m| v.min >= m)
                && scaling.max.is_none_or(|m| v.max >= m)
        };
        if !done(&n) {
            self.permit()?;
            self.cx
                .ops
                .set_nodegroup_scaling(&region, cluster, nodegroup, scaling)
                .await?;
        }
        loop {
            self.permit()?;
            let Some(n) = self.cx.ops.nodegroup(&region, cluster, nodegroup).await? else {
                return Err(StepError::Unmet(format!(
                    "EKS node group {nodegroup} disappeared from cluster {cluster}"
                )));
            };
            if n.status == "ACTIVE" && done(&n) {
                return Ok(format!(
                    "{nodegroup}: ACTIVE, desired {} (min {}, max {})",
                    n.desired, n.min, n.max
                ));
            }
            if n.status == "DEGRADED" || n.status.ends_with("FAILED") {
                return Err(StepError::Unmet(format!("{nodegroup}: {}", n.status)));
            }
            let now = format!("{nodegroup}: {}, desired {}", n.status, n.desired);
            self.poll_or(deadline, limit, now).await?;
        }
    }
}
