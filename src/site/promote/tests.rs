//! The Auto Scaling step against the SDK's own client with canned answers
//! (aws-smithy-mocks): the community LocalStack has no Auto Scaling API. The executor runs
//! for real (record, budgets, paused time); only the HTTP answers are canned.

use super::*;
use crate::provider::aws::sites::AwsSiteOps;
use crate::site::record::{RunKind, SiteRuns};
use crate::site::store::MemRunStore;
use aws_sdk_autoscaling::Client as Asg;
use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityOutput;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance, LifecycleState};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use std::sync::atomic::{AtomicU32, Ordering};

/// West: warm, an Auto Scaling group raised to `desired`, then the shift.
fn spec(desired: u32) -> String {
    floatover_devkit::sitecfg::west_site(&format!(
        "    tier: warm\n    auto_scaling: {{ name: web-asg, desired: {desired} }}\n    steps: [ {{ scale_up: {{ budget: 20s }} }}, {{ shift: {{}} }} ]\n"
    ))
}

fn group(
    desired: i32,
    max: i32,
    healthy: usize,
    pending: usize,
) -> DescribeAutoScalingGroupsOutput {
    let mut g = AutoScalingGroup::builder()
        .auto_scaling_group_name("web-asg")
        .desired_capacity(desired)
        .max_size(max)
        .min_size(0);
    for i in 0..healthy + pending {
        let (life, health) = if i < healthy {
            (LifecycleState::InService, "Healthy")
        } else {
            (LifecycleState::Pending, "Healthy")
        };
        g = g.instances(
            Instance::builder()
                .instance_id(format!("i-00000000000000{i:03}"))
                .lifecycle_state(life)
                .health_status(health)
                .availability_zone("us-west-2a")
                .protected_from_scale_in(false)
                .build(),
        );
    }
    DescribeAutoScalingGroupsOutput::builder()
        .auto_scaling_groups(g.build())
        .build()
}

/// Run the west site's plan with the canned Auto Scaling answers; returns the record.
async fn run(desired: u32, rules: &[&Rule]) -> RunRecord {
    let spec = Arc::new(crate::config::from_yaml(&spec(desired)).expect("valid"));
    let asg: Asg = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, rules);
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-west-2"))
            .build(),
    );
    let metrics = Arc::new(Metrics::new());
    let ops = AwsSiteOps::with_clients(&spec.aws, metrics.clone(), "us-west-2", ec2, asg);
    let store: Arc<dyn RunStore> = Arc::new(MemRunStore::default());
    let west = spec.sites[1].clone();
    let (runs, _) = update(store.as_ref(), 1, |r: &mut SiteRuns| {
        r.start(&spec.sites, &west, RunKind::Promotion, "test".into(), 1)
            .map(|x| x.id.clone())
            .ok()
    })
    .await
    .expect("start");
    let id = runs.current.expect("run").id;
    // The engine's side of a switchover: done at once (the engine has its own tests).
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(Command::Switchover { reply, .. }) = rx.recv().await {
            let _ = reply.send(Ok(Vec::new()));
        }
    });
    let cx = SiteCx {
        board: Arc::new(HealthBoard::new(&spec, Instant::now())),
        spec: spec.clone(),
        store,
        ops: Arc::new(ops),
        commands: tx,
        leadership: Leadership::always_leader("r0"),
        metrics,
        approvals: Arc::new(Approvals::default()),
        status: Arc::new(crate::status::StatusStore::default()),
    };
    Executor::new(cx, west, 1, id)
        .run()
        .await
        .expect("finished")
}

#[tokio::test(start_paused = true)]
async fn scale_up_raises_desired_then_waits_until_in_service() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // 0 desired; after the raise: 1 in service + 1 pending, then 2 in service.
    let describe = mock!(Asg::describe_auto_scaling_groups)
        .sequence()
        .output(|| group(0, 4, 0, 0))
        .output(|| group(2, 4, 1, 1))
        .times(2)
        .output(|| group(2, 4, 2, 0))
        .repeatedly()
        .build();
    let set = mock!(Asg::set_desired_capacity)
        .match_requests(move |r| {
            c.fetch_add(1, Ordering::SeqCst);
            r.auto_scaling_group_name() == Some("web-asg")
                && r.desired_capacity() == Some(2)
                && r.honor_cooldown() == Some(false)
        })
        .then_output(|| SetDesiredCapacityOutput::builder().build());
    let rec = run(2, &[&describe, &set]).await;
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "desired raised once");
    let s = &rec.steps[0];
    assert_eq!(s.kind, "scale_up");
    assert_eq!(s.detail.as_deref(), Some("web-asg: 2 of 2 in service"));
}

#[tokio::test(start_paused = true)]
async fn scale_up_never_lowers_and_names_what_stops_it() {
    // Already at 3 (more than the 2 asked): no write, done at once.
    let describe = mock!(Asg::describe_auto_scaling_groups).then_output(|| group(3, 4, 3, 0));
    let rec = run(2, &[&describe]).await;
    assert_eq!(rec.state, RunState::Succeeded);
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some("web-asg: 3 of 2 in service (capacity was already there)")
    );

    // Above the group's max: refused before any write, in the user's words.
    let describe = mock!(Asg::describe_auto_scaling_groups).then_output(|| group(0, 1, 0, 0));
    let rec = run(2, &[&describe]).await;
    assert_eq!(rec.state, RunState::Failed);
    assert_eq!(
        rec.steps[0].error.as_deref(),
        Some("Auto Scaling group web-asg: desired 2 is above its max size 1; raise max_size")
    );

    // The group does not exist.
    let describe = mock!(Asg::describe_auto_scaling_groups)
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    let rec = run(2, &[&describe]).await;
    assert_eq!(
        rec.steps[0].error.as_deref(),
        Some("Auto Scaling group web-asg does not exist in us-west-2")
    );

    // Instances never get in service: fails at twice the budget, naming their states.
    let describe = mock!(Asg::describe_auto_scaling_groups)
        .sequence()
        .output(|| group(0, 4, 0, 0))
        .output(|| group(2, 4, 1, 1))
        .repeatedly()
        .build();
    let set = mock!(Asg::set_desired_capacity)
        .then_output(|| SetDesiredCapacityOutput::builder().build());
    let rec = run(2, &[&describe, &set]).await;
    assert_eq!(rec.state, RunState::Failed);
    let err = rec.steps[0].error.clone().unwrap_or_default();
    assert!(
        err.starts_with("web-asg: 1 of 2 in service after 40s (i-00000000000000000 InService, i-00000000000000001 Pending)"),
        "{err}"
    );
    assert!(rec.steps[0].over_budget);
}

#[tokio::test(start_paused = true)]
async fn a_refused_write_reads_op_in_region_code_message() {
    let describe = mock!(Asg::describe_auto_scaling_groups).then_output(|| group(0, 4, 0, 0));
    let set = mock!(Asg::set_desired_capacity).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).expect("status"),
            aws_smithy_types::body::SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: autoscaling:SetDesiredCapacity</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            ),
        )
    });
    let rec = run(2, &[&describe, &set]).await;
    assert_eq!(
        rec.steps[0].error.as_deref(),
        Some(
            "SetDesiredCapacity in us-west-2: AccessDenied: User is not authorized to perform: autoscaling:SetDesiredCapacity"
        )
    );
}

#[test]
fn the_client_token_is_stable_per_step_and_short_enough() {
    let a = client_token("west-1", "launch");
    assert_eq!(a, client_token("west-1", "launch"));
    assert_ne!(a, client_token("west-2", "launch"));
    assert!(a.len() <= 64 && a.is_ascii());
}
