//! Rules for the controller's own settings: its API, its AWS clients and its leader
//! election.

use super::super::raw::*;
use super::super::spec::*;
use super::{Issues, bounded, ms, not_blank};
use std::net::SocketAddr;

pub(super) fn resolve_api(
    raw: &RawApi,
    env: &dyn Fn(&str) -> Option<String>,
    is: &mut Issues,
) -> Option<ApiSpec> {
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            is.add(
                "api.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:9090 or [::]:9090",
                    raw.listen
                ),
            );
            None
        }
    };
    check_endpoint("api.advertise", &raw.advertise, is);
    let advertise = |l: SocketAddr| match &raw.advertise {
        Some(a) => a.trim_end_matches('/').to_string(),
        None if l.ip().is_unspecified() => {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("http://{host}:{}", l.port())
        }
        None => format!("http://{l}"),
    };
    let token = match (&raw.token, &raw.token_env) {
        (Some(_), Some(_)) => {
            is.add(
                "api.token_env",
                "set either api.token or api.token_env, not both",
            );
            None
        }
        (Some(t), None) => {
            if t.len() < 16 {
                is.add("api.token", "must be at least 16 characters");
            }
            Some(t.clone())
        }
        (None, Some(var)) => match env(var) {
            Some(t) if t.len() >= 16 => Some(t),
            Some(_) => {
                is.add(
                    "api.token_env",
                    format!("${var} must hold at least 16 characters"),
                );
                None
            }
            None => {
                is.add(
                    "api.token_env",
                    format!("environment variable ${var} is not set"),
                );
                None
            }
        },
        (None, None) => None,
    };
    listen.map(|listen| ApiSpec {
        listen,
        advertise: advertise(listen),
        token,
    })
}

pub(super) fn check_endpoint(path: &str, url: &Option<String>, is: &mut Issues) {
    if let Some(u) = url {
        match reqwest::Url::parse(u) {
            Ok(p) if p.scheme() == "http" || p.scheme() == "https" => {}
            _ => is.add(path, format!("{u:?} is not an http(s) URL")),
        }
    }
}

pub(super) fn resolve_aws(raw: &RawAws, is: &mut Issues) -> Option<AwsSpec> {
    check_endpoint("aws.endpoint_url", &raw.endpoint_url, is);
    for (service, url) in &raw.service_endpoints {
        let path = format!("aws.service_endpoints.{service}");
        if !crate::aws::SERVICES.contains(&service.as_str()) {
            is.add(
                path,
                format!(
                    "unknown service (one of {})",
                    crate::aws::SERVICES.join(", ")
                ),
            );
        } else {
            check_endpoint(&path, &Some(url.clone()), is);
        }
    }
    bounded(
        "aws.call_timeout",
        raw.call_timeout.0,
        ms(50),
        ms(60_000),
        is,
    );
    if !(1..=10).contains(&raw.max_attempts) {
        is.add("aws.max_attempts", "must be between 1 and 10");
    }
    if !(1..=10_000).contains(&raw.mutate_burst) {
        is.add("aws.mutate_burst", "must be between 1 and 10000");
    }
    if !(1..=1_000).contains(&raw.mutate_per_second) {
        is.add("aws.mutate_per_second", "must be between 1 and 1000");
    }
    if !(1..=10_000).contains(&raw.describe_burst) {
        is.add("aws.describe_burst", "must be between 1 and 10000");
    }
    if !(1..=1_000).contains(&raw.describe_per_second) {
        is.add("aws.describe_per_second", "must be between 1 and 1000");
    }
    for (api, l) in &raw.api_limits {
        let path = format!("aws.api_limits.{api}");
        if !EC2_APIS.contains(&api.as_str()) {
            is.add(
                path.clone(),
                format!(
                    "not an EC2 API floatover calls (one of: {})",
                    EC2_APIS.join(", ")
                ),
            );
        }
        if !(1..=10_000).contains(&l.burst) {
            is.add(format!("{path}.burst"), "must be between 1 and 10000");
        }
        if !(1..=1_000).contains(&l.per_second) {
            is.add(format!("{path}.per_second"), "must be between 1 and 1000");
        }
    }
    if !(1..=10_000).contains(&raw.dns_burst) {
        is.add("aws.dns_burst", "must be between 1 and 10000");
    }
    if !(1..=1_000).contains(&raw.dns_per_second) {
        is.add("aws.dns_per_second", "must be between 1 and 1000");
    }
    Some(AwsSpec {
        default_region: String::new(),
        endpoint_url: raw.endpoint_url.clone(),
        call_timeout: raw.call_timeout.0,
        max_attempts: raw.max_attempts,
        mutate_burst: raw.mutate_burst,
        mutate_per_second: raw.mutate_per_second,
        api_limits: crate::pace::Limits {
            mutate: Some(crate::pace::Limit {
                burst: raw.mutate_burst,
                per_second: raw.mutate_per_second,
            }),
            read: Some(crate::pace::Limit {
                burst: raw.describe_burst,
                per_second: raw.describe_per_second,
            }),
            apis: raw.api_limits.clone(),
        },
        dns_burst: raw.dns_burst,
        dns_per_second: raw.dns_per_second,
        dns_member_writes: raw.dns_member_writes,
        service_endpoints: raw.service_endpoints.clone(),
        credentials: None,
    })
}

pub(super) fn resolve_leader(
    raw: &RawLeader,
    aws: &RawAws,
    default_region: Option<&str>,
    is: &mut Issues,
) -> Option<LeaderSpec> {
    let (lease, renew, retry) = (
        raw.lease_duration.0,
        raw.renew_deadline.0,
        raw.retry_period.0,
    );
    bounded("leader.retry_period", retry, ms(10), ms(60_000), is);
    bounded("leader.renew_deadline", renew, ms(20), ms(300_000), is);
    bounded("leader.lease_duration", lease, ms(30), ms(600_000), is);
    if renew <= retry {
        is.add(
            "leader.renew_deadline",
            "must be greater than leader.retry_period",
        );
    }
    if lease <= renew {
        is.add(
            "leader.lease_duration",
            "must be greater than leader.renew_deadline (the margin protects against clock-rate differences)",
        );
    }
    if aws.call_timeout.0.saturating_add(retry) >= renew {
        is.add(
            "aws.call_timeout",
            format!(
                "aws.call_timeout ({}) + leader.retry_period ({}) must be less than leader.renew_deadline ({}), otherwise the fenced leader could never mutate",
                floatover_core::human::duration(aws.call_timeout.0),
                floatover_core::human::duration(retry),
                floatover_core::human::duration(renew)
            ),
        );
    }
    if let Some(id) = &raw.identity
        && (id.is_empty() || id.len() > 128)
    {
        is.add("leader.identity", "must be 1-128 characters");
    }
    if raw.kubernetes.is_some() && raw.backend != LeaderBackendKind::Kubernetes {
        is.add("leader.kubernetes", "only allowed with backend: kubernetes");
        return None;
    }
    if raw.quorum.is_some() && raw.backend != LeaderBackendKind::Quorum {
        is.add("leader.quorum", "only allowed with backend: quorum");
        return None;
    }
    let backend = match (raw.backend, &raw.s3) {
        (
            LeaderBackendKind::Kubernetes | LeaderBackendKind::Single | LeaderBackendKind::Quorum,
            Some(_),
        ) => {
            is.add("leader.s3", "only allowed with backend: s3");
            return None;
        }
        (LeaderBackendKind::Kubernetes, None) => kubernetes_lease(
            "leader.kubernetes",
            raw.kubernetes.clone().unwrap_or_default(),
            is,
        ),
        (LeaderBackendKind::Single, None) => LeaderBackend::Single,
        (LeaderBackendKind::Quorum, None) => {
            let Some(q) = &raw.quorum else {
                is.add(
                    "leader.quorum",
                    "required with backend: quorum (members: 3 or 5 stores, each s3 or kubernetes)",
                );
                return None;
            };
            super::quorum::quorum_lease(q, aws, default_region, is)
        }
        (LeaderBackendKind::S3, None) => {
            is.add("leader.s3", "required with backend: s3 (bucket, key)");
            return None;
        }
        (LeaderBackendKind::S3, Some(s3)) => s3_lease("leader.s3", s3, aws, default_region, is),
    };
    Some(LeaderSpec {
        backend,
        lease_duration: lease,
        renew_deadline: renew,
        retry_period: retry,
        identity: raw.identity.clone(),
    })
}

/// A Kubernetes Lease's name and namespace must be object names. `at` is the field path.
pub(super) fn kubernetes_lease(at: &str, k: RawKubeLease, is: &mut Issues) -> LeaderBackend {
    let dns_label = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !s.starts_with(['-', '.'])
            && !s.ends_with(['-', '.'])
    };
    if !dns_label(&k.name) {
        is.add(
            format!("{at}.name"),
            format!(
                "{:?} is not a Kubernetes object name (lower case a-z, 0-9, '-', '.')",
                k.name
            ),
        );
    }
    if let Some(ns) = &k.namespace
        && (ns.len() > 63 || ns.contains('.') || !dns_label(ns))
    {
        is.add(
            format!("{at}.namespace"),
            format!("{ns:?} is not a namespace name (lower case a-z, 0-9, '-', at most 63)"),
        );
    }
    not_blank(&format!("{at}.context"), k.context.as_deref(), is);
    LeaderBackend::Kubernetes {
        namespace: k.namespace,
        name: k.name,
        context: k.context,
    }
}

/// The S3 lease: a bucket and key in a region (its own, or the default one). `at` is the
/// field path.
pub(super) fn s3_lease(
    at: &str,
    s3: &RawS3Lease,
    aws: &RawAws,
    default_region: Option<&str>,
    is: &mut Issues,
) -> LeaderBackend {
    not_blank(&format!("{at}.region"), s3.region.as_deref(), is);
    not_blank(
        &format!("{at}.endpoint_url"),
        s3.endpoint_url.as_deref(),
        is,
    );
    if s3.bucket.len() < 3 || s3.bucket.len() > 63 || s3.bucket.contains('/') {
        is.add(
            format!("{at}.bucket"),
            "must be a valid S3 bucket name (3-63 characters, no '/')",
        );
    }
    if s3.key.is_empty() || s3.key.starts_with('/') {
        is.add(
            format!("{at}.key"),
            "must be a non-empty key that does not start with '/'",
        );
    }
    check_endpoint(&format!("{at}.endpoint_url"), &s3.endpoint_url, is);
    let region = s3
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .or(default_region.map(str::to_string));
    if region.is_none() {
        is.add(
            format!("{at}.region"),
            format!("no region: set {at}.region or aws.region"),
        );
    }
    LeaderBackend::S3 {
        bucket: s3.bucket.clone(),
        key: s3.key.clone(),
        region: region.unwrap_or_default(),
        endpoint_url: s3.endpoint_url.clone().or(aws.endpoint_url.clone()),
    }
}

/// The EC2 APIs floatover calls, each with its own client-side bucket.
pub const EC2_APIS: [&str; 11] = [
    "AssociateAddress",
    "DisassociateAddress",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "ReplaceRoute",
    "CreateRoute",
    "DeleteRoute",
    "CreateTags",
    "DescribeAddresses",
    "DescribeNetworkInterfaces",
    "DescribeRouteTables",
];
