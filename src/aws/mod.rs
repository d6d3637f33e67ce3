//! What every AWS client of floatover shares, the EC2 provider and the S3 lease alike:
//! the SDK configuration (timeouts, standard retries), attempt counting and adaptive
//! backoff ([`attempts`]), and errors classified in a person's words (`op in region: Code:
//! message`, never a Debug dump).

pub mod attempts;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::time::Duration;

/// How floatover talks to AWS (the config's `aws:` section, resolved). Defined here rather
/// than in `config` so that the providers and lease stores that use it do not depend on
/// the config module (which depends on them for their own validation).
#[derive(Debug, Clone)]
pub struct AwsSpec {
    pub default_region: String,
    pub endpoint_url: Option<String>,
    pub call_timeout: Duration,
    pub max_attempts: u32,
    pub mutate_burst: u32,
    pub mutate_per_second: u32,
    /// Client-side buckets per EC2 API: category defaults and per-API overrides.
    pub api_limits: crate::pace::Limits,
    pub dns_burst: u32,
    pub dns_per_second: u32,
    pub dns_member_writes: MemberWrites,
    /// Per-service endpoint overrides (`rds`, `ecs`, ...), over `endpoint_url`: two
    /// emulators side by side, or VPC endpoints per service.
    pub service_endpoints: std::collections::BTreeMap<String, String>,
    /// Static credentials handed over by a program that embeds floatover (the tests do,
    /// for LocalStack, instead of changing the process environment under running
    /// threads). The config file cannot set them: None uses the SDK's default chain
    /// (environment, profile, instance or pod role).
    pub credentials: Option<aws_credential_types::Credentials>,
}

/// Services whose endpoint `aws.service_endpoints` may override.
pub const SERVICES: [&str; 8] = [
    "ec2",
    "s3",
    "route53",
    "autoscaling",
    "rds",
    "ecs",
    "eks",
    "cloudwatch",
];

impl AwsSpec {
    /// The endpoint for `service`: its own override, else `endpoint_url`.
    pub fn endpoint_for(&self, service: &str) -> Option<&str> {
        self.service_endpoints
            .get(service)
            .or(self.endpoint_url.as_ref())
            .map(String::as_str)
    }
}

/// How a DNS change batch writes the weighted records it changes. Either way the batch
/// swaps the version record (DELETE N, CREATE N+1), which is the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberWrites {
    /// DELETE each changed record exactly as observed, CREATE the new one: a record
    /// changed by anyone since the read also makes the batch fail (Route 53).
    #[default]
    Replace,
    /// UPSERT changed records. For emulators: LocalStack 4.13 refuses to CREATE a record
    /// identical to one it ever held, so a weight could not return to an earlier value.
    Upsert,
}

/// Shared SDK configuration: endpoint override, timeouts and retries.
pub async fn sdk_config(
    region: &str,
    endpoint_url: Option<&str>,
    call_timeout: Duration,
    max_attempts: u32,
    credentials: Option<aws_credential_types::Credentials>,
) -> SdkConfig {
    let attempt = (call_timeout / max_attempts.max(1))
        .max(Duration::from_millis(200))
        .min(call_timeout);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(500)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(attempt)
                .operation_attempt_timeout(attempt)
                .operation_timeout(call_timeout)
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(c) = credentials {
        loader = loader.credentials_provider(c);
    }
    loader.load().await
}

/// Codes AWS uses for throttling across services.
pub fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "TooManyRequestsException"
            | "SlowDown"
            | "PriorRequestNotComplete"
    )
}

/// How an SDK call failed, in a person's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: timeout, connection refused, DNS, TLS. `code` is `Timeout` or
    /// `ConnectionError`.
    Transport { code: String, message: String },
    /// The service answered with a throttling code.
    Throttled { code: String, message: String },
    /// The service answered with another error code.
    Api { code: String, message: String },
}

/// The innermost cause of an error chain: "Connection refused (os error 111)" rather than
/// three layers of wrapper Debug output.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Classify any AWS SDK error (every service shares the same `SdkError`).
pub fn failure<E, R>(e: &aws_sdk_ec2::error::SdkError<E, R>) -> Failure
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus + 'static,
{
    use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
    match e {
        SdkError::TimeoutError(_) => Failure::Transport {
            code: "Timeout".into(),
            message: "no answer within the call timeout".into(),
        },
        SdkError::DispatchFailure(d) => Failure::Transport {
            code: "ConnectionError".into(),
            message: d
                .as_connector_error()
                .map(|c| root_cause(c))
                .unwrap_or_else(|| "could not send the request".into()),
        },
        SdkError::ConstructionFailure(_) => Failure::Api {
            code: "RequestNotBuilt".into(),
            message: root_cause(e),
        },
        _ => {
            let status = e.raw_response().map(HttpStatus::status_code);
            let code = e
                .code()
                .map(str::to_string)
                .or_else(|| status.map(|s| format!("HTTP{s}")))
                .unwrap_or_else(|| "Unknown".into());
            let message = e
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| root_cause(e));
            if is_throttle(&code) || status == Some(429) {
                Failure::Throttled { code, message }
            } else {
                Failure::Api { code, message }
            }
        }
    }
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}
