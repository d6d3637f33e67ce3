//! The EC2 provider asks the fence before every mutating call (against LocalStack):
//! a refused fence means no call at all; a fence that closes between the stamp and the
//! move leaves only the stamp (which fences older leaders) and an untouched float.

use floatover::aws::MemberWrites;
use floatover::config::AwsSpec;
use floatover::leader::{Fence, FenceError};
use floatover::metrics::Metrics;
use floatover::model::{Epoch, MoveStamp, Reason, TargetId};
use floatover::provider::aws::AwsProvider;
use floatover::provider::aws::ec2::spec::{Ec2Endpoint, Ec2Float};
use floatover::provider::{Bindings, FloatKind, FloatRef};
use floatover::provider::{FloatProvider, MoveOrder, ProviderError, StampWhen};
use floatover_devkit::{LocalStack, seed};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Permits the first `n` calls, then refuses.
struct Countdown(AtomicU32);

impl Fence for Countdown {
    fn permit(&self, _: Epoch, _: Duration) -> Result<(), FenceError> {
        let left = self.0.load(Ordering::SeqCst);
        if left == 0 {
            return Err(FenceError::NotLeader);
        }
        self.0.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mutating_call_without_the_fence() {
    let (ls, w, p) = provider_and_world("fence", 1).await;
    let clients = seed::clients(&ls.endpoint, "us-east-1").await;
    let kind = FloatKind::Ec2(Ec2Float::Eip {
        allocation_id: w.allocation_id.clone(),
    });
    let float = FloatRef {
        id: kind.id(),
        region: "us-east-1".into(),
        kind,
    };
    let order = MoveOrder {
        float: float.clone(),
        to: Bindings {
            ec2: Some(Ec2Endpoint {
                instance_id: Some(w.instances[0].instance_id.clone()),
                eni_id: None,
            }),
            dns: None,
            arc: None,
        },
        from: None,
        stamp: MoveStamp {
            epoch: Epoch(3),
            reason: Reason::Failover,
            target: TargetId("a".into()),
        },
        stamp_when: StampWhen::Before,
        strict: None,
        turn: Default::default(),
    };

    let r = p.move_float(&order, &Countdown(AtomicU32::new(0))).await;
    assert!(
        matches!(
            r,
            Err(ProviderError::Fenced {
                op: "CreateTags",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(p.mutating_calls(), 0);
    let obs = p
        .observe(std::slice::from_ref(&float), &[])
        .await
        .expect("observe");
    assert_eq!(obs[&float.id].holder, None);
    assert_eq!(obs[&float.id].stamp, None, "nothing was written");

    // A float that does not exist (stale config) does not hide the others.
    let ghost_kind = FloatKind::Ec2(Ec2Float::Eip {
        allocation_id: "eipalloc-doesnotexist".into(),
    });
    let ghost = FloatRef {
        id: ghost_kind.id(),
        region: "us-east-1".into(),
        kind: ghost_kind,
    };
    let obs = p
        .observe(&[float.clone(), ghost.clone()], &[])
        .await
        .expect("observe with an unknown float");
    assert!(obs.contains_key(&float.id) && !obs.contains_key(&ghost.id));

    // The fence closes after the stamp: the stamp is there, the float did not move.
    let r = p.move_float(&order, &Countdown(AtomicU32::new(1))).await;
    assert!(
        matches!(
            r,
            Err(ProviderError::Fenced {
                op: "AssociateAddress",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(p.mutating_calls(), 1);
    let obs = p
        .observe(std::slice::from_ref(&float), &[])
        .await
        .expect("observe");
    assert_eq!(obs[&float.id].holder, None);
    assert_eq!(
        obs[&float.id].stamp.as_ref().map(|s| s.epoch),
        Some(Epoch(3))
    );
    assert_eq!(clients.eip_holder(&w.allocation_id).await, None);

    // Open fence: stamp + move, and the observation shows both.
    p.move_float(&order, &Countdown(AtomicU32::new(10)))
        .await
        .expect("move");
    let obs = p
        .observe(std::slice::from_ref(&float), &[])
        .await
        .expect("observe");
    assert_eq!(
        obs[&float.id]
            .holder
            .as_ref()
            .and_then(|h| h.ec2()?.instance_id.clone()),
        Some(w.instances[0].instance_id.clone())
    );
    assert_eq!(p.mutating_calls(), 3);
}

async fn provider_and_world(tag: &str, instances: usize) -> (LocalStack, seed::World, AwsProvider) {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let w = seed::world(
        &ls.endpoint,
        "us-east-1",
        instances,
        &format!("{tag}-{}-{}", std::process::id(), rand::random::<u32>()),
    )
    .await
    .expect("seed");
    let aws = AwsSpec {
        default_region: "us-east-1".into(),
        endpoint_url: Some(ls.endpoint.clone()),
        call_timeout: Duration::from_millis(1500),
        max_attempts: 3,
        mutate_burst: 50,
        mutate_per_second: 5,
        api_limits: Default::default(),
        dns_burst: 50,
        dns_per_second: 10,
        dns_member_writes: MemberWrites::Upsert,
        service_endpoints: Default::default(),
        credentials: Some(floatover_devkit::test_credentials()),
    };
    let p = AwsProvider::connect(&aws, &["us-east-1".into()], Arc::new(Metrics::new())).await;
    (ls, w, p)
}

fn eip(w: &seed::World) -> FloatRef {
    let kind = FloatKind::Ec2(Ec2Float::Eip {
        allocation_id: w.allocation_id.clone(),
    });
    FloatRef {
        id: kind.id(),
        region: "us-east-1".into(),
        kind,
    }
}

fn to(w: &seed::World, i: usize, when: StampWhen, strict: Option<Option<String>>) -> MoveOrder {
    MoveOrder {
        float: eip(w),
        to: Bindings {
            ec2: Some(Ec2Endpoint {
                instance_id: Some(w.instances[i].instance_id.clone()),
                eni_id: None,
            }),
            dns: None,
            arc: None,
        },
        from: None,
        stamp: MoveStamp {
            epoch: Epoch(5),
            reason: Reason::Failover,
            target: TargetId(format!("t{i}")),
        },
        stamp_when: when,
        strict,
        turn: Default::default(),
    }
}

/// An automatic move is one call on the failover path: the move goes first (the fence is
/// asked before it), the stamp after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_moves_take_one_call_then_stamp() {
    let (_ls, w, p) = provider_and_world("after", 2).await;
    let r = p
        .move_float(
            &to(&w, 0, StampWhen::After, None),
            &Countdown(AtomicU32::new(0)),
        )
        .await;
    assert!(
        matches!(
            r,
            Err(ProviderError::Fenced {
                op: "AssociateAddress",
                ..
            })
        ),
        "the move itself is the first mutating call: {r:?}"
    );
    let done = p
        .move_float(
            &to(&w, 0, StampWhen::After, None),
            &Countdown(AtomicU32::new(10)),
        )
        .await
        .expect("move");
    assert_eq!(done.calls_to_move, 1, "one round trip on the failover path");
    assert_eq!(done.stamp_error, None);
    let obs = p.observe(&[eip(&w)], &[]).await.expect("observe");
    let o = &obs[&eip(&w).id];
    assert_eq!(
        o.stamp.as_ref().map(|s| s.epoch),
        Some(Epoch(5)),
        "stamp written after"
    );
    assert!(o.version.is_some(), "the association id is observed");
}

/// Strict fencing: a move based on a stale view of the association is refused by EC2
/// itself, and a move based on the current view takes two calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_fencing_refuses_a_move_based_on_a_stale_view() {
    let (_ls, w, p) = provider_and_world("strict", 3).await;
    let open = Countdown(AtomicU32::new(100));
    p.move_float(&to(&w, 0, StampWhen::After, None), &open)
        .await
        .expect("initial");
    let stale = p.observe(&[eip(&w)], &[]).await.expect("observe")[&eip(&w).id]
        .version
        .clone();
    assert!(stale.is_some());
    // Someone else moves it (a successor leader, a person): the association changes.
    p.move_float(&to(&w, 1, StampWhen::After, None), &open)
        .await
        .expect("moved by someone else");
    // A stale leader, acting on its old view, is refused at EC2.
    let r = p
        .move_float(&to(&w, 2, StampWhen::After, Some(stale)), &open)
        .await;
    assert!(
        matches!(r, Err(ProviderError::Conflict { .. })),
        "stale strict move must be refused: {r:?}"
    );
    let seed = seed::clients(&_ls.endpoint, "us-east-1").await;
    assert_eq!(
        seed.eip_holder(&w.allocation_id).await.as_deref(),
        Some(w.instances[1].instance_id.as_str()),
        "the stale write did not land"
    );
    // With the current view, the strict move works: disassociate + associate.
    let current = p.observe(&[eip(&w)], &[]).await.expect("observe")[&eip(&w).id]
        .version
        .clone();
    let done = p
        .move_float(&to(&w, 2, StampWhen::After, Some(current)), &open)
        .await
        .expect("strict move");
    assert_eq!(done.calls_to_move, 2);
    assert_eq!(
        seed.eip_holder(&w.allocation_id).await.as_deref(),
        Some(w.instances[2].instance_id.as_str())
    );
    // An unassociated EIP under strict fencing: AssociateAddress without reassociation.
    let err_if_associated = p
        .move_float(&to(&w, 0, StampWhen::After, Some(None)), &open)
        .await;
    assert!(
        matches!(err_if_associated, Err(ProviderError::Conflict { code, .. }) if code == "Resource.AlreadyAssociated"),
        "strict move of an EIP believed unassociated is refused when it is associated"
    );
}
