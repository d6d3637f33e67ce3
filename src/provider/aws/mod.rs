//! AWS providers. SDK types stay in here; the rest of floatover sees domain types.
//!
//! Retries: the SDK's standard retry mode (exponential backoff with full jitter on
//! throttling, 5xx and transport errors), bounded by `aws.max_attempts` and by an
//! operation timeout (`aws.call_timeout`) that also bounds the fence check. Every attempt
//! is counted, and sustained throttling slows mutating calls down adaptively *before* the
//! token bucket ([`attempts::Backoff`]).
//! Pacing: EC2 calls wait in client-side token buckets, one per API and region, as EC2
//! counts them (defaults from EC2's documented categories: mutating 50 and 5 a second,
//! Describe 100 and 20 a second; `aws.api_limits` overrides one API), in priority order
//! ([`crate::pace`]), so a bulk move goes at EC2's own pace instead of being throttled.
//! Route 53 change batches keep one account-wide bucket (`aws.dns_*`).

pub mod arc;
pub mod data;
pub mod ec2;
pub mod route53;
pub mod sites;
pub mod stamp;

use crate::aws::AwsSpec;
pub use crate::aws::{Failure, HttpStatus, attempts, failure, is_throttle, sdk_config};
use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::provider::{
    FloatKind, FloatProvider, FloatRef, MoveDone, MoveOrder, Observation, ProviderError,
    ReleaseOrder, StampOrder, TargetBindings, WeightDone, WeightOrder,
};
use ec2::Ec2Region;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use route53::Route53;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Client-side token bucket for one account-region.
pub type Pacer = Arc<DefaultDirectRateLimiter>;

/// Build a token bucket with `burst` tokens refilled at `per_second`.
pub fn pacer(burst: u32, per_second: u32) -> Pacer {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// One AWS call: a tracing span (service, operation, region), its time and outcome in the
/// metrics, and SDK errors turned into ours. Every provider call goes through here.
pub async fn timed<T, E, R>(
    metrics: &crate::metrics::Metrics,
    service: &'static str,
    op: &'static str,
    region: &str,
    fut: impl std::future::Future<Output = Result<T, aws_sdk_ec2::error::SdkError<E, R>>>,
) -> Result<T, ProviderError>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus + 'static,
{
    use tracing::Instrument;
    let started = tokio::time::Instant::now();
    let res = fut
        .instrument(tracing::info_span!("aws", service, op, region))
        .await;
    let took = started.elapsed();
    match res {
        Ok(v) => {
            metrics.provider_call(op, took, true, 0);
            Ok(v)
        }
        Err(e) => {
            let err = classify(op, region, e);
            let throttled = u32::from(matches!(err, ProviderError::Throttled { .. }));
            metrics.provider_call(op, took, false, throttled);
            Err(err)
        }
    }
}

/// Turn an SDK error into a [`ProviderError`] with the operation and region in it.
pub fn classify<E, R>(
    op: &'static str,
    region: &str,
    e: aws_sdk_ec2::error::SdkError<E, R>,
) -> ProviderError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus + 'static,
{
    let region = region.to_string();
    match failure(&e) {
        Failure::Transport { code, message } => ProviderError::Transport {
            op,
            region,
            code,
            message,
        },
        Failure::Throttled { code, message } => ProviderError::Throttled {
            op,
            region,
            code,
            message,
        },
        Failure::Api { code, message } => ProviderError::Api {
            op,
            region,
            code,
            message,
        },
    }
}

/// EC2 floats in every region the config uses, and Route 53 record sets.
pub struct AwsProvider {
    regions: HashMap<String, Ec2Region>,
    dns: Arc<Route53>,
    arc: arc::float::ArcFloats,
    mutations: Arc<AtomicU64>,
}

impl AwsProvider {
    /// Mutating API calls issued so far (stamps included). Not part of the provider
    /// trait: the engine never needs it; tests use it to prove that a converged world is
    /// left alone, and so could a status page.
    pub fn mutating_calls(&self) -> u64 {
        self.mutations.load(Ordering::Relaxed)
    }

    /// Build one EC2 client per region, sharing credentials and settings.
    pub async fn connect(aws: &AwsSpec, regions: &[String], metrics: Arc<Metrics>) -> Self {
        let mutations = Arc::new(AtomicU64::new(0));
        let base = sdk_config(
            &aws.default_region,
            aws.endpoint_url.as_deref(),
            aws.call_timeout,
            aws.max_attempts,
            aws.credentials.clone(),
        )
        .await;
        let mut map = HashMap::new();
        for r in regions {
            let backoff = Arc::new(attempts::Backoff::default());
            let conf = aws_sdk_ec2::config::Builder::from(&base)
                .region(aws_config::Region::new(r.clone()))
                .interceptor(attempts::AttemptCounter {
                    metrics: metrics.clone(),
                    backoff: backoff.clone(),
                })
                .build();
            map.insert(
                r.clone(),
                Ec2Region {
                    region: r.clone(),
                    client: aws_sdk_ec2::Client::from_conf(conf),
                    buckets: Arc::new(crate::pace::Buckets::new(r.clone(), aws.api_limits.clone())),
                    stamps: Default::default(),
                    backoff,
                    call_timeout: aws.call_timeout,
                    metrics: metrics.clone(),
                    mutations: mutations.clone(),
                },
            );
        }
        // Route 53 is global; its API is signed for us-east-1.
        let dns_conf = aws_sdk_route53::config::Builder::from(&base)
            .region(aws_config::Region::new("us-east-1"))
            .interceptor(attempts::AttemptCounter {
                metrics: metrics.clone(),
                backoff: Arc::new(attempts::Backoff::default()),
            })
            .build();
        let mut r53 = Route53::new(
            aws_sdk_route53::Client::from_conf(dns_conf),
            pacer(aws.dns_burst, aws.dns_per_second),
            aws.call_timeout,
            metrics.clone(),
            mutations.clone(),
        );
        r53.member_writes = aws.dns_member_writes;
        let dns = Arc::new(r53);
        let arc = arc::float::ArcFloats::new(
            aws.call_timeout,
            aws.credentials.clone(),
            metrics.clone(),
            mutations.clone(),
        );
        AwsProvider {
            regions: map,
            dns,
            arc,
            mutations,
        }
    }

    /// Instance ids among `ids` that EC2 does not know in `region` (`floatover plan`).
    pub async fn missing_instances(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.region(region)?.missing_instances(ids).await
    }

    fn region(&self, r: &str) -> Result<&Ec2Region, ProviderError> {
        self.regions
            .get(r)
            .ok_or_else(|| ProviderError::UnknownRegion(r.to_string()))
    }
}

#[async_trait::async_trait]
impl FloatProvider for AwsProvider {
    async fn observe(
        &self,
        floats: &[FloatRef],
        targets: &[TargetBindings],
    ) -> Result<HashMap<String, Observation>, ProviderError> {
        let mut by_region: HashMap<&str, Vec<&FloatRef>> = HashMap::new();
        let mut dns = Vec::new();
        let mut arcs = Vec::new();
        for f in floats {
            match f.kind {
                FloatKind::Ec2(_) => by_region.entry(f.region.as_str()).or_default().push(f),
                FloatKind::Dns(_) => dns.push(f),
                FloatKind::Arc(_) => arcs.push(f),
            }
        }
        let calls = by_region.into_iter().map(|(r, fs)| {
            let mut enis: Vec<String> = targets
                .iter()
                .filter(|t| t.region == r)
                .filter_map(|t| t.bindings.ec2.as_ref()?.eni_id.clone())
                .collect();
            enis.sort();
            enis.dedup();
            async move { self.region(r)?.observe(&fs, &enis).await }
        });
        let dns_read = async {
            if dns.is_empty() {
                Ok(HashMap::new())
            } else {
                self.dns.observe(&dns).await
            }
        };
        let arc_read = async {
            if arcs.is_empty() {
                Ok(HashMap::new())
            } else {
                self.arc.observe(&arcs).await
            }
        };
        let (parts, dns_part, arc_part) =
            tokio::join!(futures::future::join_all(calls), dns_read, arc_read);
        let mut out = dns_part?;
        out.extend(arc_part?);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    async fn move_float(
        &self,
        order: &MoveOrder,
        fence: &dyn Fence,
    ) -> Result<MoveDone, ProviderError> {
        if let FloatKind::Arc(_) = order.float.kind {
            return self.arc.move_float(order, fence).await;
        }
        self.region(&order.float.region)?
            .move_float(order, fence)
            .await
    }

    async fn stamp_float(
        &self,
        order: &StampOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        match order.float.kind {
            FloatKind::Dns(_) => return self.dns.stamp_float(order, fence).await,
            // Nowhere to keep a stamp (see `arc::float`).
            FloatKind::Arc(_) => return Ok(()),
            FloatKind::Ec2(_) => {}
        }
        self.region(&order.float.region)?
            .stamp_float(order, fence)
            .await
    }

    async fn set_weights(
        &self,
        orders: &[WeightOrder],
        fence: &dyn Fence,
    ) -> Vec<Result<WeightDone, ProviderError>> {
        self.dns.set_weights(orders, fence).await
    }

    fn propagation(&self, float: &FloatRef) -> Option<crate::provider::Propagation> {
        self.dns.propagation(&float.id)
    }

    fn queues(&self) -> Vec<crate::pace::QueueStatus> {
        let mut regions: Vec<&Ec2Region> = self.regions.values().collect();
        regions.sort_by(|a, b| a.region.cmp(&b.region));
        regions.iter().flat_map(|r| r.buckets.status()).collect()
    }

    fn read_lane(&self, float: &FloatRef) -> String {
        match float.kind {
            FloatKind::Ec2(_) => format!("ec2 {}", float.region),
            FloatKind::Dns(_) => "route53".into(),
            FloatKind::Arc(_) => "arc".into(),
        }
    }

    async fn release_float(
        &self,
        order: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        match order.float.kind {
            FloatKind::Dns(_) => return self.dns.release_float(order, fence).await,
            FloatKind::Arc(_) => return self.arc.release_float(order, fence).await,
            FloatKind::Ec2(_) => {}
        }
        self.region(&order.float.region)?
            .release_float(order, fence)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket gives out its burst, then refuses until it refills (checked without
    /// waiting, so the test does not depend on timing).
    #[test]
    fn pacer_allows_burst_then_refuses() {
        let p = pacer(3, 1);
        for _ in 0..3 {
            assert!(p.check().is_ok());
        }
        assert!(p.check().is_err());
    }

    #[test]
    fn throttle_codes() {
        assert!(is_throttle("RequestLimitExceeded"));
        assert!(is_throttle("Throttling"));
        assert!(!is_throttle("InvalidAllocationID.NotFound"));
    }
}
