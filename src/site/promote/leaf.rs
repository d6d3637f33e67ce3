//! One leaf step of a promotion: its kind's call, bounded by its budget.

use super::*;

impl Executor {
    pub(super) async fn leaf(&self, step: &Step) -> Outcome {
        let limit = self.limit(step);
        let t0 = Instant::now();
        let waited = |r: Result<String, StepError>, attempts: u32| Outcome {
            result: r,
            waited: t0.elapsed(),
            attempts,
        };
        match &step.kind {
            StepKind::StartInstances => waited(self.start_instances(limit).await, 1),
            StepKind::WaitHealthy { min } => waited(self.wait_healthy(*min, limit).await, 1),
            StepKind::Shift => {
                if let Err(e) = self.record_cutover_lag().await {
                    return waited(Err(e), 0);
                }
                let (r, n) = self.shift(&step.name, limit).await;
                waited(r, n)
            }
            StepKind::RpoGate => waited(self.rpo_gate(&step.name, limit).await, 1),
            StepKind::PromoteReplica { instance } => {
                waited(self.promote_replica(instance, limit).await, 1)
            }
            StepKind::PromoteCluster {
                global_cluster,
                cluster,
                mode,
                allow_data_loss,
            } => waited(
                self.promote_cluster(
                    &step.name,
                    global_cluster,
                    cluster,
                    *mode,
                    *allow_data_loss,
                    limit,
                )
                .await,
                1,
            ),
            StepKind::ScaleEcs {
                cluster,
                service,
                desired,
            } => waited(self.scale_ecs(cluster, service, *desired, limit).await, 1),
            StepKind::ScaleEksNodegroup {
                cluster,
                nodegroup,
                desired,
                min,
                max,
            } => {
                let scaling = crate::provider::sites::NodegroupScaling {
                    desired: *desired,
                    min: *min,
                    max: *max,
                };
                waited(self.scale_eks(cluster, nodegroup, scaling, limit).await, 1)
            }
            StepKind::Approval => waited(self.approval(limit).await, 1),
            StepKind::Verify => waited(self.verify(limit).await, 1),
            StepKind::Exec { command, retries } => {
                let gate = || self.permit();
                let (r, n) =
                    crate::site::hooks::exec(command, *retries, limit, &self.payload(step), &gate)
                        .await;
                Outcome {
                    result: r.map_err(StepError::from),
                    waited: Duration::ZERO,
                    attempts: n,
                }
            }
            StepKind::Webhook {
                url,
                secret_env,
                timeout,
                retries,
            } => {
                let (r, n) = crate::site::hooks::webhook(
                    url,
                    secret_env.as_deref(),
                    *timeout,
                    *retries,
                    limit,
                    &self.payload(step),
                    &|| self.permit(),
                )
                .await;
                Outcome {
                    result: r.map_err(StepError::from),
                    waited: Duration::ZERO,
                    attempts: n,
                }
            }
            StepKind::ScaleUp => waited(self.scale_up(limit).await, 1),
            StepKind::Launch => waited(self.launch(&step.name, limit).await, 1),
            StepKind::Parallel(_) => waited(Err("internal: nested parallel".into()), 0),
            StepKind::RoutingControls {
                cluster,
                on,
                off,
                overrides,
            } => {
                if let Err(e) = self.record_cutover_lag().await {
                    return waited(Err(e), 0);
                }
                let (r, n) = self
                    .routing_controls(&step.name, cluster, on, off, overrides, limit)
                    .await;
                waited(r, n)
            }
        }
    }

    /// The JSON a hook receives.
    pub(super) fn payload(&self, step: &Step) -> serde_json::Value {
        serde_json::json!({
            "event": "floatover.site.step",
            "site": self.site.name,
            "region": self.site.region,
            "tier": self.site.tier.as_str(),
            "run": self.run_id,
            "step": step.name,
            "epoch": self.epoch,
            "sent_unix_ms": unix_ms(),
        })
    }
}
