//! Checks of what a site brings up on promotion: stopped instances to start, an Auto
//! Scaling group to raise, instances to launch, and that the tier matches them.

use super::raw::{RawSite, RawStep, Tier};
use super::resolve::Ctx;

pub(super) fn check(cx: &mut Ctx, p: &str, s: &RawSite) {
    for (j, id) in s.instances.iter().enumerate() {
        if !crate::provider::aws::ec2::spec::is_instance_id(id) {
            cx.add(
                format!("{p}.instances[{j}]"),
                format!("{id:?} is not an EC2 instance id (i-...)"),
            );
        }
    }
    if let Some(a) = &s.auto_scaling {
        if a.name.trim().is_empty() {
            cx.add(format!("{p}.auto_scaling.name"), "must not be empty");
        }
        if a.desired == 0 {
            cx.add(
                format!("{p}.auto_scaling.desired"),
                "must be at least 1 (the capacity the site needs to take the traffic)",
            );
        }
    }
    if let Some(l) = &s.launch {
        if l.launch_template.is_none() && l.image_id.is_none() {
            cx.add(
                format!("{p}.launch"),
                "needs a launch_template or an image_id",
            );
        }
        if l.launch_template.is_none() && l.instance_type.is_none() {
            cx.add(
                format!("{p}.launch.instance_type"),
                "required without a launch_template",
            );
        }
        if !(1..=100).contains(&l.count) {
            cx.add(format!("{p}.launch.count"), "between 1 and 100");
        }
        if l.min_healthy.is_some_and(|m| m == 0 || m > l.count) {
            cx.add(
                format!("{p}.launch.min_healthy"),
                format!("between 1 and launch.count ({})", l.count),
            );
        }
    }
    match s.tier {
        Tier::Warm if s.instances.is_empty() && s.auto_scaling.is_none() && !scales(s) => cx.add(
            format!("{p}.tier"),
            "a warm site needs stopped `instances` to start, an `auto_scaling` group to raise, or a scale_ecs or scale_eks_nodegroup step",
        ),
        Tier::Cold if s.launch.is_none() => cx.add(
            format!("{p}.tier"),
            "a cold site needs `launch` (a launch template or an AMI)",
        ),
        Tier::Hot | Tier::Warm if s.launch.is_some() => cx.add(
            format!("{p}.launch"),
            "only a cold site launches instances (set tier: cold)",
        ),
        _ => {}
    }
}

/// Whether the site's plan scales a container service or a node group (capacity a warm
/// site may raise instead of instances).
fn scales(s: &RawSite) -> bool {
    fn any(steps: &[RawStep]) -> bool {
        steps.iter().any(|st| match st {
            RawStep::ScaleEcs(_) | RawStep::ScaleEksNodegroup(_) => true,
            RawStep::Parallel(p) => any(&p.steps),
            _ => false,
        })
    }
    s.steps.as_deref().is_some_and(any)
}
