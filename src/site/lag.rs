//! Reading a site's replication lag: how far the data behind the site is behind the
//! primary, from the source its config names (an HTTP endpoint or a command answering
//! seconds, or CloudWatch's RDS `ReplicaLag` / Aurora `AuroraGlobalDBReplicationLag`).
//! The RPO gate, pre-flight and the cut-over record all read it through here.

use crate::config::site::spec::{LagSource, RpoSpec};
use crate::provider::ProviderError;
use crate::provider::sites::SiteOps;
use std::time::Duration;

/// Why the lag could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error("GET {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{program}: {reason}")]
    Exec { program: String, reason: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// CloudWatch has no datapoint in the last ten minutes.
    #[error("no {metric} datapoint for {resource} in the last 10 minutes")]
    NoData { metric: String, resource: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Seconds as a lag, refusing what is not one (negative, not finite).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let v: f64 = t
        .parse()
        .map_err(|_| format!("{:?} is not a number of seconds", truncate(t)))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{v} is not a lag (negative or not finite)"));
    }
    Duration::try_from_secs_f64(v).map_err(|e| format!("{v}: {e}"))
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The lag now, read from `spec`'s source (`region`: the site's, for CloudWatch).
pub async fn read(spec: &RpoSpec, region: &str, ops: &dyn SiteOps) -> Result<Duration, LagError> {
    match tokio::time::timeout(
        spec.timeout,
        read_source(&spec.lag, region, ops, spec.timeout),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(LagError::Timeout(spec.timeout)),
    }
}

async fn read_source(
    source: &LagSource,
    region: &str,
    ops: &dyn SiteOps,
    timeout: Duration,
) -> Result<Duration, LagError> {
    match source {
        LagSource::Http { url } => {
            let fail = |reason: String| LagError::Http {
                url: url.clone(),
                reason,
            };
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let resp = client
                .get(url)
                .send()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(fail(format!("answered {status}")));
            }
            let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
            parse_seconds(&body).map_err(fail)
        }
        LagSource::Exec { command } => {
            let program = command.first().cloned().unwrap_or_default();
            let fail = |reason: String| LagError::Exec {
                program: program.clone(),
                reason,
            };
            let out = tokio::process::Command::new(&program)
                .args(command.iter().skip(1))
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| fail(e.to_string()))?;
            if !out.status.success() {
                return Err(fail(format!(
                    "exited with {}: {}",
                    out.status,
                    truncate(String::from_utf8_lossy(&out.stderr).trim())
                )));
            }
            parse_seconds(&String::from_utf8_lossy(&out.stdout)).map_err(fail)
        }
        LagSource::Rds { instance } => {
            let v = ops
                .metric_latest(
                    region,
                    "AWS/RDS",
                    "ReplicaLag",
                    ("DBInstanceIdentifier", instance),
                )
                .await?
                .ok_or_else(|| LagError::NoData {
                    metric: "ReplicaLag".into(),
                    resource: instance.clone(),
                })?;
            Ok(Duration::try_from_secs_f64(v.max(0.0)).unwrap_or(Duration::MAX))
        }
        LagSource::AuroraGlobal { cluster } => {
            let v = ops
                .metric_latest(
                    region,
                    "AWS/RDS",
                    "AuroraGlobalDBReplicationLag",
                    ("DBClusterIdentifier", cluster),
                )
                .await?
                .ok_or_else(|| LagError::NoData {
                    metric: "AuroraGlobalDBReplicationLag".into(),
                    resource: cluster.clone(),
                })?;
            // Milliseconds.
            Ok(Duration::try_from_secs_f64(v.max(0.0) / 1e3).unwrap_or(Duration::MAX))
        }
    }
}

/// `12.3 s` / `850 ms`: a lag as a person reads it.
pub fn show(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_and_refuse_what_is_not_a_lag() {
        assert_eq!(parse_seconds(" 12.5\n"), Ok(Duration::from_millis(12_500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(
            parse_seconds("twelve")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn shown_in_units_a_person_reads() {
        assert_eq!(show(Duration::from_millis(850)), "850 ms");
        assert_eq!(show(Duration::from_millis(42_000)), "42.0 s");
    }
}
