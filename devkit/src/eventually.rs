//! The one way tests wait for something: poll a condition until it holds or a timeout
//! passes, and say how long it took. Every wait in the tests, the demo and the benchmarks
//! goes through here, so a change of pace (or a bug in waiting) is made once.

use std::time::{Duration, Instant};

/// How often [`eventually`] polls: fine enough to time a failover to a few tens of ms.
pub const EVERY: Duration = Duration::from_millis(25);

/// Poll `f` every [`EVERY`] until it holds; how long it took, or None after `timeout`.
pub async fn eventually(timeout: Duration, f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    eventually_every(timeout, EVERY, f).await
}

/// [`eventually`] at another pace (a slow API, or a finer measurement).
pub async fn eventually_every(
    timeout: Duration,
    every: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if f().await {
            return Some(t.elapsed());
        }
        if t.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_at_once_or_times_out() {
        assert!(
            eventually(Duration::from_secs(1), async || true)
                .await
                .is_some()
        );
        let mut n = 0;
        let took = eventually_every(
            Duration::from_secs(5),
            Duration::from_millis(1),
            async || {
                n += 1;
                n == 3
            },
        )
        .await;
        assert!(took.is_some());
        assert_eq!(n, 3);
        let never = eventually(Duration::from_millis(60), async || false).await;
        assert_eq!(never, None);
    }
}
