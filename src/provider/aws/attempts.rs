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
use std::sync::Arc;

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

/// Counts attempts into [`Metrics`].
#[derive(Clone)]
pub struct AttemptCounter {
    pub metrics: Arc<Metrics>,
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::outcome;

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
