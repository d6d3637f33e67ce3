//! Invariants checked at the end of every fault test, over the fault proxies' request
//! logs (what really reached the provider, and when) and the replicas' audit trails.
//! Each returns a description of the first violation, so a failing test says what broke.

use crate::faultproxy::Seen;
use std::time::Duration;

/// Mutating calls that reached the provider from different replicas never overlap in
/// time: at most one leader acts at a time (README, "Leader election and fencing"). Windows are
/// `[forwarded, answered]` (a call that never got an answer is open until the end).
pub fn no_overlap_between_replicas(logs: &[(&str, &[Seen])]) -> Result<(), String> {
    let mut calls: Vec<(u64, u64, &str, &str)> = Vec::new();
    for (replica, log) in logs {
        for s in log.iter().filter(|s| s.is_mutating()) {
            if let Some(f) = s.forwarded_ms {
                calls.push((f, s.answered_ms.unwrap_or(u64::MAX), replica, &s.op));
            }
        }
    }
    calls.sort();
    for (i, a) in calls.iter().enumerate() {
        for b in &calls[i + 1..] {
            if b.0 > a.1 {
                break;
            }
            if a.2 != b.2 {
                return Err(format!(
                    "{} {} [{}..{}] overlaps {} {} [{}..{}]",
                    a.2, a.3, a.0, a.1, b.2, b.3, b.0, b.1
                ));
            }
        }
    }
    Ok(())
}

/// Every mutating call of a replica was sent while its fence allowed it. The fence is
/// asked once per operation: the first attempt must leave no later than the last
/// successful lease write + `renew_deadline` - `call_timeout`, and every attempt of it
/// (SDK retries) no later than the last lease write + `renew_deadline`, so that the whole
/// operation is over before anyone else can hold the lease. `slack` covers the hop to
/// the proxy. `lease` is the same replica's S3 proxy log.
pub fn within_fence(
    ec2: &[Seen],
    lease: &[Seen],
    renew_deadline: Duration,
    call_timeout: Duration,
    slack: Duration,
) -> Result<(), String> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let puts: Vec<u64> = lease
        .iter()
        .filter(|s| s.op == "PutObject" && s.status == Some(200))
        .map(|s| s.received_ms)
        .collect();
    for s in ec2.iter().filter(|s| s.is_mutating()) {
        let Some(last) = puts.iter().filter(|p| **p <= s.received_ms).max() else {
            return Err(format!(
                "{} at {} before any lease write",
                s.op, s.received_ms
            ));
        };
        let lease_end = last + ms(renew_deadline) + ms(slack);
        let deadline = if s.attempt <= 1 {
            lease_end.saturating_sub(ms(call_timeout))
        } else {
            lease_end
        };
        if s.received_ms > deadline {
            return Err(format!(
                "{} (attempt {}) sent at {} after the fence deadline {} (last renewal {})",
                s.op, s.attempt, s.received_ms, deadline, last
            ));
        }
    }
    Ok(())
}

/// No AssociateAddress reached the provider towards an instance whose health endpoint was
/// down at that moment. `down` lists `(instance_id, from_ms, until_ms)`.
pub fn never_onto_down(ec2: &[Seen], down: &[(String, u64, u64)]) -> Result<(), String> {
    for s in ec2.iter().filter(|s| s.op == "AssociateAddress") {
        let (Some(at), Some(inst)) = (s.forwarded_ms, s.param("InstanceId")) else {
            continue;
        };
        if let Some((_, from, until)) = down
            .iter()
            .find(|(i, from, until)| i == inst && *from <= at && at <= *until)
        {
            return Err(format!(
                "AssociateAddress onto {inst} at {at}, which was down from {from} to {until}"
            ));
        }
    }
    Ok(())
}

/// Mutating calls that reached the provider in `[from_ms, until_ms]`.
pub fn mutating_between(log: &[Seen], from_ms: u64, until_ms: u64) -> usize {
    log.iter()
        .filter(|s| s.is_mutating())
        .filter(|s| {
            s.forwarded_ms
                .is_some_and(|f| from_ms <= f && f <= until_ms)
        })
        .count()
}

/// Mutating *operations* (first attempts; SDK retries are the SDK's business) of each API
/// never come faster than that API's client-side token bucket allows over any window
/// (EC2 counts every API in its own bucket, and so does floatover).
pub fn within_bucket(log: &[Seen], burst: u32, per_second: u32) -> Result<(), String> {
    let mut by_op: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for s in log.iter().filter(|s| s.is_mutating() && s.attempt <= 1) {
        by_op.entry(s.op.as_str()).or_default().push(s.received_ms);
    }
    for (op, mut t) in by_op {
        t.sort_unstable();
        for (i, start) in t.iter().enumerate() {
            for (j, end) in t.iter().enumerate().skip(i) {
                let n = (j - i + 1) as u64;
                let window_s = (end - start) as f64 / 1000.0;
                // Allowance for the time between the bucket and the proxy (signing,
                // connection setup): 250 ms.
                let allowed = f64::from(burst) + f64::from(per_second) * (window_s + 0.25);
                if n as f64 > allowed + 1e-9 {
                    return Err(format!(
                        "{n} {op} operations in {window_s:.3}s exceed burst {burst} + {per_second}/s"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(op: &str, recv: u64, fwd: Option<u64>, ans: Option<u64>, status: u16) -> Seen {
        Seen {
            op: op.into(),
            region: "us-east-1".into(),
            params: vec![("InstanceId".into(), "i-1".into())],
            attempt: 1,
            received_ms: recv,
            forwarded_ms: fwd,
            answered_ms: ans,
            status: Some(status),
        }
    }

    #[test]
    fn checkers_catch_what_they_claim() {
        let a = vec![seen("AssociateAddress", 100, Some(100), Some(150), 200)];
        let b = vec![seen("AssociateAddress", 140, Some(140), Some(160), 200)];
        assert!(no_overlap_between_replicas(&[("a", &a), ("b", &b)]).is_err());
        let b = vec![seen("AssociateAddress", 151, Some(151), Some(160), 200)];
        assert!(no_overlap_between_replicas(&[("a", &a), ("b", &b)]).is_ok());
        let lease = vec![seen("PutObject", 0, Some(0), Some(5), 200)];
        let late = vec![seen(
            "AssociateAddress",
            1_200,
            Some(1_200),
            Some(1_210),
            200,
        )];
        let d = Duration::from_millis;
        assert!(within_fence(&late, &lease, d(2_500), d(1_500), d(50)).is_err());
        assert!(within_fence(&a, &lease, d(2_500), d(1_500), d(50)).is_ok());
        assert!(never_onto_down(&a, &[("i-1".into(), 90, 200)]).is_err());
        assert!(never_onto_down(&a, &[("i-1".into(), 200, 300)]).is_ok());
        assert_eq!(mutating_between(&a, 0, 120), 1);
        let burst: Vec<Seen> = (0..5)
            .map(|i| seen("CreateTags", i * 10, Some(i), Some(i), 200))
            .collect();
        assert!(within_bucket(&burst, 5, 1).is_ok());
        assert!(within_bucket(&burst, 3, 1).is_err());
    }
}
