//! The `routing_control` float in the config: a Route 53 ARC control panel whose routing
//! controls stand for the group's targets (one each), and the cluster endpoints to reach
//! it. Checked here so that a mistake names its field before anything runs.

use super::ClusterEndpoint;
use crate::provider::aws::ec2::spec::Problem;
use serde::{Deserialize, Serialize};

/// A group steered by ARC routing controls: the owner's control is on, every other
/// target's is off. The Route 53 records that answer clients are created beforehand
/// (failover or weighted records, each with a health check of type `RECOVERY_CONTROL`),
/// so a move needs only the cluster's data plane, never Route 53's change API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ArcFloat {
    /// `arn:aws:route53-recovery-control::<account>:controlpanel/<id>`.
    pub control_panel: String,
    /// The cluster's regional endpoints, tried in turn.
    pub cluster: Vec<ClusterEndpoint>,
    /// Every routing control of the group's targets (filled in once the targets are
    /// read): a move turns the new owner's on and all of these others off in one update,
    /// which ARC checks against its safety rules as a whole.
    pub controls: Vec<String>,
}

impl ArcFloat {
    /// `arc:<control panel id>`.
    pub fn id(&self) -> String {
        let panel = self
            .control_panel
            .rsplit_once("controlpanel/")
            .map_or(self.control_panel.as_str(), |(_, id)| id);
        format!("arc:{panel}")
    }
}

/// The float as written in the config.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArcFloat {
    /// The control panel's ARN.
    pub control_panel: String,
    /// The cluster's regional endpoints (`DescribeCluster` lists them), 1 to 5.
    pub cluster: Vec<RawEndpoint>,
}

/// One regional endpoint of an ARC cluster.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub endpoint: String,
    pub region: String,
}

fn problem(field: &str, reason: impl Into<String>) -> Problem {
    Problem {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// True for `arn:<partition>:route53-recovery-control::<12 digits>:controlpanel/<id>`.
fn control_panel_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(),
        ["arn", partition, "route53-recovery-control", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("controlpanel/").is_some_and(|id| !id.is_empty() && !id.contains('/')))
}

impl RawArcFloat {
    pub fn resolve(&self) -> Result<ArcFloat, Vec<Problem>> {
        let mut out = Vec::new();
        if !control_panel_arn(&self.control_panel) {
            out.push(problem(
                "routing_control.control_panel",
                format!(
                    "{:?} is not a control panel ARN such as arn:aws:route53-recovery-control::111122223333:controlpanel/abc123",
                    self.control_panel
                ),
            ));
        }
        if self.cluster.is_empty() || self.cluster.len() > 5 {
            out.push(problem(
                "routing_control.cluster",
                "list the ARC cluster's regional endpoints (1 to 5; a cluster has five)",
            ));
        }
        for (i, e) in self.cluster.iter().enumerate() {
            match reqwest::Url::parse(&e.endpoint) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => out.push(problem(
                    &format!("routing_control.cluster[{i}].endpoint"),
                    format!("{:?} is not an http(s) URL", e.endpoint),
                )),
            }
            if e.region.trim().is_empty() {
                out.push(problem(
                    &format!("routing_control.cluster[{i}].region"),
                    "must not be empty",
                ));
            }
        }
        if !out.is_empty() {
            return Err(out);
        }
        Ok(ArcFloat {
            control_panel: self.control_panel.clone(),
            cluster: self
                .cluster
                .iter()
                .map(|e| ClusterEndpoint {
                    url: e.endpoint.clone(),
                    region: e.region.clone(),
                })
                .collect(),
            controls: Vec::new(),
        })
    }
}

/// A target's routing control: required when the group has a `routing_control` float,
/// and it must belong to that float's control panel.
pub fn member(raw: Option<&str>, panels: &[String]) -> Result<Option<String>, Vec<Problem>> {
    let Some(arn) = raw else {
        if panels.is_empty() {
            return Ok(None);
        }
        return Err(vec![problem(
            "routing_control",
            "required: the group has a routing_control float (set this target's routing control ARN)",
        )]);
    };
    if panels.is_empty() {
        return Err(vec![problem(
            "routing_control",
            "the group has no routing_control float for this to steer",
        )]);
    }
    let mut out = Vec::new();
    for panel in panels {
        let ok = arn
            .strip_prefix(panel.as_str())
            .and_then(|rest| rest.strip_prefix("/routingcontrol/"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
        if !ok {
            out.push(problem(
                "routing_control",
                format!("{arn:?} is not a routing control of control panel {panel} (expected {panel}/routingcontrol/<id>)"),
            ));
        }
    }
    if out.is_empty() {
        Ok(Some(arn.to_string()))
    } else {
        Err(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PANEL: &str = "arn:aws:route53-recovery-control::111122223333:controlpanel/abc123";

    fn raw(panel: &str, endpoints: &[(&str, &str)]) -> RawArcFloat {
        RawArcFloat {
            control_panel: panel.into(),
            cluster: endpoints
                .iter()
                .map(|(e, r)| RawEndpoint {
                    endpoint: (*e).into(),
                    region: (*r).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_good_float_resolves_with_its_id() {
        let f = raw(PANEL, &[("https://a.example.com/v1", "us-west-2")])
            .resolve()
            .expect("valid");
        assert_eq!(f.id(), "arc:abc123");
        assert_eq!(f.cluster[0].region, "us-west-2");
    }

    #[test]
    fn bad_fields_are_named() {
        let problems = raw("arn:aws:s3:::bucket", &[("ftp://x", " ")])
            .resolve()
            .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "routing_control.control_panel",
                "routing_control.cluster[0].endpoint",
                "routing_control.cluster[0].region"
            ]
        );
        let none = raw(PANEL, &[]).resolve().expect_err("no endpoints");
        assert_eq!(none[0].field, "routing_control.cluster");
    }

    #[test]
    fn a_member_must_belong_to_the_panel() {
        let panels = [PANEL.to_string()];
        let good = format!("{PANEL}/routingcontrol/east");
        assert_eq!(member(Some(&good), &panels), Ok(Some(good.clone())));
        let other =
            "arn:aws:route53-recovery-control::111122223333:controlpanel/zzz/routingcontrol/east";
        let e = member(Some(other), &panels).expect_err("other panel");
        assert!(
            e[0].reason
                .contains("not a routing control of control panel")
        );
        assert!(member(None, &panels).is_err(), "required with the float");
        assert_eq!(member(None, &[]), Ok(None));
        assert!(member(Some(&good), &[]).is_err(), "no float to steer");
    }
}
