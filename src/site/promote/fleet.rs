//! Steps that bring capacity up: raise an Auto Scaling group (warm), launch instances
//! (cold) and probe what was launched. Each is safe to run again after a leader change:
//! the group's desired capacity is only ever raised to the configured value, and a launch
//! records its instances before waiting on them, tags them with the run, and passes a
//! client token derived from the run, so a new leader finds them instead of launching twice.

use super::{Executor, StepError};
use crate::config::site::template::{Vars, render_probe};
use crate::probe::{Checker, RiseFall};
use crate::provider::sites::LaunchRequest;
use crate::site::record::Launched;
use sha2::Digest;
use std::time::Duration;
use tokio::time::Instant;

/// Tag keys floatover puts on launched instances.
pub const TAG_SITE: &str = "floatover:site";
pub const TAG_RUN: &str = "floatover:run";

/// At most 64 ASCII characters, the same for every attempt of one run's step.
pub fn client_token(run_id: &str, step: &str) -> String {
    let d = sha2::Sha256::digest(format!("{run_id}/{step}").as_bytes());
    let mut t = format!("floatover-{}", hex::encode(d));
    t.truncate(64);
    t
}

impl Executor {
    pub(super) async fn scale_up(&self, limit: Duration) -> Result<String, StepError> {
        let deadline = Instant::now() + limit;
        let region = &self.site.region;
        let Some((name, desired)) = self.site.auto_scaling.clone() else {
            return Err("the site has no `auto_scaling` group".into());
        };
        let ops = &self.cx.ops;
        self.permit()?;
        let g = ops
            .scaling_group(region, &name)
            .await?
            .ok_or_else(|| format!("Auto Scaling group {name} does not exist in {region}"))?;
        if desired > g.max {
            return Err(StepError::Unmet(format!(
                "Auto Scaling group {name}: desired {desired} is above its max size {}; raise max_size",
                g.max
            )));
        }
        let raised = g.desired < desired;
        if raised {
            self.permit()?;
            ops.set_desired(region, &name, desired).await?;
        }
        loop {
            self.permit()?;
            let g = ops
                .scaling_group(region, &name)
                .await?
                .ok_or_else(|| format!("Auto Scaling group {name} disappeared from {region}"))?;
            let n = g.in_service.len();
            if n >= desired as usize {
                return Ok(format!(
                    "{name}: {n} of {desired} in service{}",
                    if raised {
                        ""
                    } else {
                        " (capacity was already there)"
                    }
                ));
            }
            if Instant::now() >= deadline {
                let states: Vec<String> = g
                    .instances
                    .iter()
                    .map(|(i, s)| format!("{i} {s}"))
                    .collect();
                return Err(StepError::Unmet(format!(
                    "{name}: {n} of {desired} in service after {} ({})",
                    floatover_core::human::duration(limit),
                    if states.is_empty() {
                        "no instances yet".to_string()
                    } else {
                        states.join(", ")
                    }
                )));
            }
            tokio::time::sleep(Duration::from_secs(1).min(limit / 4)).await;
        }
    }

    pub(super) async fn launch(&self, step: &str, limit: Duration) -> Result<String, StepError> {
        let deadline = Instant::now() + limit;
        let region = &self.site.region;
        let l = self
            .site
            .launch
            .clone()
            .ok_or("the site has no `launch` settings")?;
        let ops = &self.cx.ops;
        let rec = self.current().await?;
        let mut ids: Vec<String> = rec.launched.iter().map(|x| x.id.clone()).collect();
        if ids.is_empty() {
            // A leader that died between RunInstances and the record left them tagged.
            self.permit()?;
            ids = ops.instances_tagged(region, TAG_RUN, &self.run_id).await?;
        }
        let found = !ids.is_empty();
        if !found {
            let mut tags = l.tags.clone();
            tags.insert(TAG_SITE.into(), self.site.name.clone());
            tags.insert(TAG_RUN.into(), self.run_id.clone());
            let req = LaunchRequest {
                launch_template: l.launch_template.clone(),
                version: l.version.clone(),
                image_id: l.image_id.clone(),
                instance_type: l.instance_type.clone(),
                subnet_id: l.subnet_id.clone(),
                count: l.count,
                tags,
                client_token: client_token(&self.run_id, step),
            };
            self.permit()?;
            ids = ops.run_instances(region, &req).await?;
            if ids.is_empty() {
                return Err("RunInstances returned no instances".into());
            }
        }
        let mut launched: Vec<Launched> = ids
            .iter()
            .map(|id| Launched {
                id: id.clone(),
                private_ip: None,
                public_ip: None,
            })
            .collect();
        let first = launched.clone();
        self.save(move |r| r.launched = first).await?;
        loop {
            self.permit()?;
            let views = ops.describe_instances(region, &ids).await?;
            let mut waiting = Vec::new();
            for x in launched.iter_mut() {
                match views.get(&x.id) {
                    Some(v) if v.state == "running" => {
                        x.private_ip = v.private_ip.clone();
                        x.public_ip = v.public_ip.clone();
                    }
                    Some(v) if v.state == "terminated" || v.state == "shutting-down" => {
                        return Err(StepError::Unmet(format!(
                            "instance {} is {} (launch failed)",
                            x.id, v.state
                        )));
                    }
                    Some(v) => waiting.push(format!("{} {}", x.id, v.state)),
                    None => waiting.push(format!("{} not visible yet", x.id)),
                }
            }
            if waiting.is_empty() {
                let all = launched.clone();
                self.save(move |r| r.launched = all).await?;
                let list: Vec<String> = launched
                    .iter()
                    .map(|x| match &x.private_ip {
                        Some(ip) => format!("{} ({ip})", x.id),
                        None => x.id.clone(),
                    })
                    .collect();
                return Ok(format!(
                    "{} instance(s) running{}: {}",
                    launched.len(),
                    if found {
                        ", found from an interrupted launch"
                    } else {
                        ""
                    },
                    list.join(", ")
                ));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Unmet(format!(
                    "not running after {}: {}",
                    floatover_core::human::duration(limit),
                    waiting.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Probe what this run launched with the site's `launch.probe` until `min_healthy`
    /// pass (rise in a row). Returns a line for the step's detail, or why not.
    pub(super) async fn launched_healthy(&self, deadline: Instant) -> Result<String, StepError> {
        let Some((probe, need)) = self
            .site
            .launch
            .as_ref()
            .and_then(|l| Some((l.probe.clone()?, l.min_healthy as usize)))
        else {
            return Ok(String::new());
        };
        let launched = self.current().await?.launched;
        if launched.is_empty() {
            return Err(
                "nothing was launched to probe: put a launch step before wait_healthy".into(),
            );
        }
        let mut kinds = Vec::new();
        for x in &launched {
            let vars = Vars {
                instance_id: x.id.clone(),
                private_ip: x.private_ip.clone(),
                public_ip: x.public_ip.clone(),
            };
            kinds.push((x.id.clone(), render_probe(&probe.kind, &vars)?));
        }
        let checker = Checker::for_spec(&self.cx.spec)?;
        let mut states: Vec<RiseFall> = kinds
            .iter()
            .map(|_| RiseFall::new(probe.rise, probe.fall))
            .collect();
        loop {
            let outcomes =
                futures::future::join_all(kinds.iter().map(|(_, k)| checker.run(k, probe.timeout)))
                    .await;
            let mut last = Vec::new();
            for ((st, o), (id, _)) in states.iter_mut().zip(&outcomes).zip(&kinds) {
                st.record(o.failure().is_none());
                if let Some(f) = o.failure() {
                    last.push(format!("{id}: {f}"));
                }
            }
            let up = states
                .iter()
                .filter(|s| s.state() == crate::model::Health::Up)
                .count();
            if up >= need {
                return Ok(format!(
                    "{up} of {} launched instance(s) healthy",
                    kinds.len()
                ));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Unmet(format!(
                    "{up} of {} launched instance(s) healthy, {need} needed{}",
                    kinds.len(),
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(" (last: {})", last.join("; "))
                    }
                )));
            }
            tokio::time::sleep_until((Instant::now() + probe.interval).min(deadline)).await;
        }
    }
}
