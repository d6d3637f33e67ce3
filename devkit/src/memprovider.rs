//! An in-memory float provider for deterministic engine tests with paused time. It keeps
//! who holds each float and its stamp, obeys the fence like a real provider (checked right
//! before each mutating call with the provider's call budget), logs every mutating call
//! with its virtual time, and lets a test change a float behind the controller's back
//! (out-of-band drift) or make calls fail. With [`MemProvider::with_buckets`] its mutating
//! calls wait in floatover's own per-API token buckets, as the AWS provider's do, so a
//! mass failover can be timed against the buckets' floor on the virtual clock; it counts
//! its reads ([`MemProvider::observe_calls`]).

use floatover::leader::Fence;
use floatover::model::MoveStamp;
use floatover::pace::{Buckets, Limits, Turn};
use floatover::provider::aws::ec2::spec::Ec2Endpoint;
use floatover::provider::{
    Attached, FloatProvider, FloatRef, MoveDone, MoveOrder, Observation, ProviderError,
    ReleaseOrder, StampOrder, TargetBindings,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The budget every mutating call asks the fence for (the default `aws.call_timeout`).
pub const CALL_BUDGET: Duration = Duration::from_millis(1_500);

/// One mutating call that reached the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub at: Instant,
    /// `move`, `stamp` or `release`.
    pub op: &'static str,
    pub float: String,
    /// The instance the float went to (moves only).
    pub to: Option<String>,
    pub stamp: MoveStamp,
}

#[derive(Default)]
struct Inner {
    floats: HashMap<String, Observation>,
    calls: Vec<Call>,
    refused: u64,
    /// Answer every mutating call with this error code while set.
    failing: Option<String>,
    /// How long each mutating call takes (after the fence check, before it lands).
    latency: Duration,
    /// Reads answered so far.
    observes: u64,
}

/// See the module docs.
#[derive(Default)]
pub struct MemProvider {
    inner: Mutex<Inner>,
    buckets: Option<Arc<Buckets>>,
}

impl MemProvider {
    /// A provider that knows `floats`, each held by nobody.
    pub fn new(floats: &[&str]) -> Self {
        let p = MemProvider::default();
        {
            let mut g = p.lock();
            for f in floats {
                g.floats.insert((*f).to_string(), Observation::default());
            }
        }
        p
    }

    /// Make every mutating call wait for a token of its API first (EC2's categories by
    /// default: 50 and 5 a second per mutating API).
    pub fn with_buckets(mut self, limits: Limits) -> Self {
        self.buckets = Some(Arc::new(Buckets::new("memory", limits)));
        self
    }

    /// The buckets' queues (what the engine publishes as status).
    pub fn queue_status(&self) -> Vec<floatover::pace::QueueStatus> {
        self.buckets
            .as_ref()
            .map(|b| b.status())
            .unwrap_or_default()
    }

    /// Reads (`observe` calls) answered so far.
    pub fn observe_calls(&self) -> u64 {
        self.lock().observes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance holding `float` now.
    pub fn holder(&self, float: &str) -> Option<String> {
        self.lock()
            .floats
            .get(float)
            .and_then(|o| o.holder.as_ref())
            .and_then(|h| h.ec2()?.instance_id.clone())
    }

    pub fn stamp(&self, float: &str) -> Option<MoveStamp> {
        self.lock().floats.get(float).and_then(|o| o.stamp.clone())
    }

    /// Move `float` to `instance` behind the controller's back (a person, a script, a
    /// stale leader's late write), optionally with a stamp.
    pub fn set(&self, float: &str, instance: Option<&str>, stamp: Option<MoveStamp>) {
        let mut g = self.lock();
        let o = g.floats.entry(float.to_string()).or_default();
        o.holder = instance.and_then(|i| Ec2Endpoint::attached(Some(i), None).map(Attached::Ec2));
        if stamp.is_some() {
            o.stamp = stamp;
        }
    }

    /// Every mutating call that reached the provider, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Mutating calls the fence refused.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    /// Fail every mutating call with `code` (None: succeed again).
    pub fn fail_with(&self, code: Option<&str>) {
        self.lock().failing = code.map(str::to_string);
    }

    /// Make every mutating call take `d` between the fence check and the moment it lands
    /// (an in-flight call at shutdown, a slow API).
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    async fn gate(
        &self,
        op: &'static str,
        stamp: &MoveStamp,
        fence: &dyn Fence,
        turn: &Turn,
    ) -> Result<Duration, ProviderError> {
        let waited = match &self.buckets {
            Some(b) => b.acquire(op, turn).await,
            None => Duration::ZERO,
        };
        if let Err(source) = fence.permit(stamp.epoch, CALL_BUDGET) {
            self.lock().refused += 1;
            return Err(ProviderError::Fenced { op, source });
        }
        let (failing, latency) = {
            let g = self.lock();
            (g.failing.clone(), g.latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(code) = failing {
            return Err(ProviderError::Api {
                op,
                region: "memory".into(),
                code,
                message: "injected by the test".into(),
            });
        }
        Ok(waited)
    }
}

#[async_trait::async_trait]
impl FloatProvider for MemProvider {
    async fn observe(
        &self,
        floats: &[FloatRef],
        _: &[TargetBindings],
    ) -> Result<HashMap<String, Observation>, ProviderError> {
        let mut g = self.lock();
        g.observes += 1;
        Ok(floats
            .iter()
            .filter_map(|f| g.floats.get(&f.id).map(|o| (f.id.clone(), o.clone())))
            .collect())
    }

    fn queues(&self) -> Vec<floatover::pace::QueueStatus> {
        self.queue_status()
    }

    async fn move_float(
        &self,
        o: &MoveOrder,
        fence: &dyn Fence,
    ) -> Result<MoveDone, ProviderError> {
        let waited = self
            .gate("AssociateAddress", &o.stamp, fence, &o.turn)
            .await?;
        let mut g = self.lock();
        let holder = o.to.attached_for(&o.float.kind);
        let to = holder.as_ref().and_then(|h| h.ec2()?.instance_id.clone());
        g.floats.insert(
            o.float.id.clone(),
            Observation {
                holder,
                stamp: Some(o.stamp.clone()),
                version: None,
                ..Default::default()
            },
        );
        g.calls.push(Call {
            at: Instant::now(),
            op: "move",
            float: o.float.id.clone(),
            to,
            stamp: o.stamp.clone(),
        });
        Ok(MoveDone {
            calls_to_move: 1,
            token_wait: waited,
            ..MoveDone::default()
        })
    }

    async fn stamp_float(&self, o: &StampOrder, fence: &dyn Fence) -> Result<(), ProviderError> {
        self.gate("CreateTags", &o.stamp, fence, &o.turn).await?;
        let mut g = self.lock();
        if let Some(obs) = g.floats.get_mut(&o.float.id) {
            obs.stamp = Some(o.stamp.clone());
        }
        g.calls.push(Call {
            at: Instant::now(),
            op: "stamp",
            float: o.float.id.clone(),
            to: None,
            stamp: o.stamp.clone(),
        });
        Ok(())
    }

    async fn release_float(
        &self,
        o: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        self.gate("DisassociateAddress", &o.stamp, fence, &o.turn)
            .await?;
        let mut g = self.lock();
        if let Some(obs) = g.floats.get_mut(&o.float.id) {
            obs.holder = None;
            obs.stamp = Some(o.stamp.clone());
        }
        g.calls.push(Call {
            at: Instant::now(),
            op: "release",
            float: o.float.id.clone(),
            to: None,
            stamp: o.stamp.clone(),
        });
        Ok(())
    }
}
