//! Counting every attempt, not only every operation.
//!
//! The SDK retries throttling, 5xx and timeouts inside one operation, so an operation that
//! finally succeeded may have been throttled twice on the way. Operators need those
//! attempts to see throttling before it becomes failure: this interceptor runs after
//! every attempt and counts it by operation and outcome
//! (`floatover_provider_attempts_total{op,outcome}`).

use crate::metrics::Metrics;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Adaptive backoff for mutating calls under sustained throttling: each throttled attempt
/// doubles a delay (100 ms .. 5 s), each successful one halves it (below 50 ms: none).
/// The delay is waited *before* the client-side token bucket, so what reaches the provider
/// never comes faster than the bucket allows. (The SDK's own adaptive mode delays requests
/// after our bucket released them, which bunches them up on the wire.)
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Mutex<Duration>,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn lock(&self) -> std::sync::MutexGuard<'_, Duration> {
        self.delay.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn throttled(&self) {
        let mut d = self.lock();
        *d = (*d * 2).clamp(Self::MIN, Self::MAX);
    }

    pub fn succeeded(&self) {
        let mut d = self.lock();
        *d /= 2;
        if *d < Duration::from_millis(50) {
            *d = Duration::ZERO;
        }
    }

    pub fn current(&self) -> Duration {
        *self.lock()
    }
}

/// Outcome label of one attempt.
pub fn outcome(status: Option<u16>, body: Option<&[u8]>) -> &'static str {
    let Some(status) = status else {
        return "transport_error";
    };
    let throttle_code = body.is_some_and(|b| {
        let text = String::from_utf8_lossy(&b[..b.len().min(2048)]);
        [
            "RequestLimitExceeded",
            "Throttl",
            "SlowDown",
            "TooManyRequests",
            "PriorRequestNotComplete",
        ]
        .iter()
        .any(|c| text.contains(c))
    });
    match status {
        200..=399 => "ok",
        429 => "throttled",
        _ if throttle_code => "throttled",
        500..=599 => "server_error",
        _ => "client_error",
    }
}

/// Counts attempts into [`Metrics`] and feeds the region's [`Backoff`].
#[derive(Clone)]
pub struct AttemptCounter {
    pub metrics: Arc<Metrics>,
    pub backoff: Arc<Backoff>,
}

impl std::fmt::Debug for AttemptCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptCounter")
    }
}

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "floatover-attempt-counter"
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        let resp = ctx.response();
        let label = outcome(
            resp.map(|r| r.status().as_u16()),
            resp.and_then(|r| r.body().bytes()),
        );
        self.metrics.provider_attempt(&op, label);
        match label {
            "throttled" => self.backoff.throttled(),
            "ok" => self.backoff.succeeded(),
            _ => {}
        }
        self.metrics.set_backoff(self.backoff.current());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, outcome};
    use std::time::Duration;

    #[test]
    fn backoff_doubles_on_throttling_and_decays_on_success() {
        let b = Backoff::default();
        assert_eq!(b.current(), Duration::ZERO);
        b.throttled();
        assert_eq!(b.current(), Duration::from_millis(100));
        for _ in 0..10 {
            b.throttled();
        }
        assert_eq!(b.current(), Duration::from_secs(5), "bounded");
        for _ in 0..7 {
            b.succeeded();
        }
        assert_eq!(b.current(), Duration::ZERO, "recovers");
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(None, None), "transport_error");
        assert_eq!(outcome(Some(200), None), "ok");
        let ec2 = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        assert_eq!(outcome(Some(503), Some(ec2)), "throttled");
        assert_eq!(
            outcome(Some(400), Some(b"<Code>Throttling</Code>")),
            "throttled"
        );
        assert_eq!(
            outcome(Some(503), Some(b"<Code>Unavailable</Code>")),
            "server_error"
        );
        assert_eq!(outcome(Some(500), None), "server_error");
        assert_eq!(
            outcome(Some(400), Some(b"<Code>InvalidParameterValue</Code>")),
            "client_error"
        );
        assert_eq!(outcome(Some(429), None), "throttled");
    }
}
