//! The EC2 provider asks the fence before every mutating call (against LocalStack):
//! a refused fence means no call at all; a fence that closes between the stamp and the
//! move leaves only the stamp (which fences older leaders) and an untouched float.

use floatover::config::AwsSpec;
use floatover::devkit::{LocalStack, seed, use_test_credentials};
use floatover::leader::{Fence, FenceError};
use floatover::metrics::Metrics;
use floatover::model::{Binding, Epoch, FloatKind, FloatRef, MoveStamp, Reason, TargetId};
use floatover::provider::aws::AwsProvider;
use floatover::provider::{FloatProvider, MoveOrder, ProviderError};
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
    use_test_credentials();
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let w = seed::world(
        &ls.endpoint,
        "us-east-1",
        1,
        &format!("fence-{}", std::process::id()),
    )
    .await
    .expect("seed");
    let clients = seed::clients(&ls.endpoint, "us-east-1").await;
    let aws = AwsSpec {
        default_region: "us-east-1".into(),
        endpoint_url: Some(ls.endpoint.clone()),
        call_timeout: Duration::from_millis(1500),
        max_attempts: 3,
        mutate_burst: 50,
        mutate_per_second: 5,
    };
    let p = AwsProvider::connect(&aws, &["us-east-1".into()], Arc::new(Metrics::new())).await;
    let kind = FloatKind::Eip {
        allocation_id: w.allocation_id.clone(),
    };
    let float = FloatRef {
        id: kind.id(),
        region: "us-east-1".into(),
        kind,
    };
    let order = MoveOrder {
        float: float.clone(),
        to: Binding {
            instance_id: Some(w.instances[0].instance_id.clone()),
            eni_id: None,
        },
        from: None,
        stamp: MoveStamp {
            epoch: Epoch(3),
            reason: Reason::Failover,
            target: TargetId("a".into()),
        },
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
    let ghost_kind = FloatKind::Eip {
        allocation_id: "eipalloc-doesnotexist".into(),
    };
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
            .and_then(|h| h.instance_id.clone()),
        Some(w.instances[0].instance_id.clone())
    );
    assert_eq!(p.mutating_calls(), 3);
}
