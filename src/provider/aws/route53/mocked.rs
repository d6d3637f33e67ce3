//! Real Route 53 error codes, which no emulator produces, against the provider's batch
//! path (aws-smithy-mocks: the SDK's own client with canned HTTP answers). A stale batch
//! answered with `InvalidChangeBatch` is a conflict; `Throttling` and
//! `PriorRequestNotComplete` are retried by the SDK's standard retry mode and the batch
//! lands; a 5xx after every attempt is an error that reads `op in region: Code: message`.

use super::*;
use crate::model::{Epoch, Reason, TargetId};
use crate::provider::Snapshot as AnySnapshot;
use crate::provider::{Bindings, FloatKind, FloatRef};
use aws_config::retry::RetryConfig;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsOutput;
use aws_sdk_route53::operation::get_change::GetChangeOutput;
use aws_sdk_route53::types::ChangeInfo;
use aws_smithy_mocks::{RuleMode, mock, mock_client};

struct Open;
impl Fence for Open {
    fn permit(&self, _: Epoch, _: Duration) -> Result<(), crate::leader::FenceError> {
        Ok(())
    }
}

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )
}

fn info() -> ChangeInfo {
    ChangeInfo::builder()
        .id("/change/C1")
        .status(ChangeStatus::Insync)
        .submitted_at(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .expect("change info")
}

fn provider(client: Client) -> Arc<Route53> {
    Arc::new(Route53::new(
        client,
        super::super::pacer(50, 10),
        Duration::from_secs(5),
        Arc::new(Metrics::new()),
        Arc::new(AtomicU64::new(0)),
    ))
}

fn order() -> WeightOrder {
    order_named("www.example.com.")
}

fn order_named(name: &str) -> WeightOrder {
    let rec = spec::DnsRecord {
        zone_id: "Z1".into(),
        name: name.into(),
        rtype: "A".into(),
        ttl: 60,
        routing: Default::default(),
    };
    WeightOrder {
        float: FloatRef {
            id: rec.id(),
            region: REGION.into(),
            kind: FloatKind::Dns(rec),
        },
        weights: vec![(
            Bindings {
                ec2: None,
                arc: None,
                dns: Some(spec::DnsMember {
                    set_identifier: "a".into(),
                    value: "10.0.0.1".into(),
                }),
            },
            0,
        )],
        observed: Some(AnySnapshot::Dns(Snapshot {
            members: BTreeMap::from([(
                "a".to_string(),
                Rec {
                    weight: Some(1),
                    ..Rec::plain(60, "10.0.0.1".into())
                },
            )]),
            ..Snapshot::default()
        })),
        stamp: MoveStamp {
            epoch: Epoch(3),
            reason: Reason::Failover,
            target: TargetId("-".into()),
        },
    }
}

fn retrying(conf: aws_sdk_route53::config::Builder) -> aws_sdk_route53::config::Builder {
    conf.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5)),
    )
}

#[tokio::test]
async fn invalid_change_batch_from_route53_is_a_conflict() {
    let rule = mock!(Client::change_resource_record_sets)
        .then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).expect("status"),
                aws_smithy_types::body::SdkBody::from(error_xml(
                    "InvalidChangeBatch",
                    "Tried to delete resource record set [name='www.example.com.', type='A', set-identifier='a'] but the values provided do not match the current values",
                )),
            )
        });
    let client = mock_client!(aws_sdk_route53, RuleMode::Sequential, [&rule], retrying);
    let r = provider(client).set_weights(&[order()], &Open).await;
    match &r[0] {
        Err(e @ ProviderError::Conflict { code, .. }) => {
            assert_eq!(code, "InvalidChangeBatch");
            assert!(
                e.to_string()
                    .starts_with("ChangeResourceRecordSets in global: InvalidChangeBatch: "),
                "{e}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(rule.num_calls(), 1, "a conflict is not retried");
}

#[tokio::test]
async fn throttling_and_prior_request_not_complete_are_retried() {
    let rule = mock!(Client::change_resource_record_sets)
        .sequence()
        .http_status(400, Some(error_xml("Throttling", "Rate exceeded")))
        .http_status(
            400,
            Some(error_xml(
                "PriorRequestNotComplete",
                "The request was rejected because Route 53 was still processing a prior request.",
            )),
        )
        .output(|| {
            ChangeResourceRecordSetsOutput::builder()
                .change_info(info())
                .build()
        })
        .build();
    let insync = mock!(Client::get_change)
        .then_output(|| GetChangeOutput::builder().change_info(info()).build());
    let client = mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        [&rule, &insync],
        retrying
    );
    let r = provider(client).set_weights(&[order()], &Open).await;
    let done = r[0].as_ref().expect("the batch lands after two retries");
    assert_eq!(done.changed, 1);
    assert_eq!(rule.num_calls(), 3);
    assert!(done.insync.is_some(), "INSYNC read back");
}

#[tokio::test]
async fn a_5xx_after_every_attempt_reads_in_words() {
    let rule = mock!(Client::change_resource_record_sets)
        .sequence()
        .http_status(503, Some(error_xml("ServiceUnavailable", "try again")))
        .times(3)
        .build();
    let client = mock_client!(aws_sdk_route53, RuleMode::Sequential, [&rule], retrying);
    let r = provider(client).set_weights(&[order()], &Open).await;
    let e = r[0].as_ref().expect_err("an error");
    assert_eq!(
        e.to_string(),
        "ChangeResourceRecordSets in global: ServiceUnavailable: try again"
    );
    assert_eq!(rule.num_calls(), 3);
}

/// `n` groups' decisions for zone Z1 made while the zone's batch is in flight (its lock
/// held); their results once it is released.
async fn while_the_zone_is_busy(
    p: Arc<Route53>,
    n: usize,
) -> Vec<Result<WeightDone, ProviderError>> {
    let lock = p.zone_lock("Z1");
    let held = lock.lock().await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..n {
        let p = p.clone();
        calls.spawn(async move {
            p.set_weights(&[order_named(&format!("w{i}.example.com."))], &Open)
                .await
        });
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    drop(held);
    let mut out = Vec::new();
    while let Some(r) = calls.join_next().await {
        out.extend(r.expect("join"));
    }
    out
}

/// Five groups' decisions that wait for one zone while its batch is in flight go out in
/// the next batch together: one ChangeResourceRecordSets, not five. If Route 53 refuses
/// the merged batch (one stale view), each is sent again alone.
#[tokio::test]
async fn changes_waiting_for_a_zone_share_its_next_batch() {
    let ok = mock!(Client::change_resource_record_sets).then_output(|| {
        ChangeResourceRecordSetsOutput::builder()
            .change_info(info())
            .build()
    });
    let insync = mock!(Client::get_change)
        .then_output(|| GetChangeOutput::builder().change_info(info()).build());
    let client = mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        [&ok, &insync],
        retrying
    );
    for r in while_the_zone_is_busy(provider(client), 5).await {
        let done = r.as_ref().expect("applied");
        assert_eq!(done.batch_size, 5, "all five in one batch");
    }
    assert_eq!(ok.num_calls(), 1, "one batch for the zone");
}

#[tokio::test]
async fn a_refused_merged_batch_is_sent_again_member_by_member() {
    let rule = mock!(Client::change_resource_record_sets)
        .sequence()
        .http_status(
            400,
            Some(error_xml("InvalidChangeBatch", "values do not match")),
        )
        .output(|| {
            ChangeResourceRecordSetsOutput::builder()
                .change_info(info())
                .build()
        })
        .times(2)
        .build();
    let insync = mock!(Client::get_change)
        .then_output(|| GetChangeOutput::builder().change_info(info()).build());
    let client = mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        [&rule, &insync],
        retrying
    );
    for r in while_the_zone_is_busy(provider(client), 2).await {
        assert!(r.is_ok(), "each lands alone: {r:?}");
    }
    assert_eq!(rule.num_calls(), 3, "the merged batch, then one each");
}
