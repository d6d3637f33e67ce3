//! Shutdown on signals: the first SIGTERM/SIGINT stops in order, a second one exits at
//! once.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The first SIGTERM/SIGINT asks for an orderly shutdown (`stop`); a second one means
/// "now": this returns, and `run` exits at once with [`Exit::Interrupted`] (a returned
/// outcome rather than an exit from a task, so that it can be tested).
pub async fn shutdown_on_signals<F, Fut>(mut next_signal: F, stop: CancellationToken)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<&'static str>>,
{
    tokio::select! {
        s = next_signal() => match s {
            Some(name) => tracing::info!("{name}: shutting down"),
            // No signals to wait for: only a shutdown asked for otherwise.
            None => std::future::pending::<()>().await,
        },
        _ = stop.cancelled() => {}
    }
    stop.cancel();
    if next_signal().await.is_none() {
        std::future::pending::<()>().await;
    }
    tracing::warn!("second signal: exiting at once");
}

/// SIGTERM or SIGINT, whichever comes first (None: they cannot be listened for).
pub(super) fn process_signals()
-> impl FnMut() -> futures::future::BoxFuture<'static, Option<&'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let both = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => Some(Arc::new(tokio::sync::Mutex::new((t, i)))),
        _ => {
            tracing::error!("cannot listen for SIGTERM/SIGINT");
            None
        }
    };
    move || {
        let both = both.clone();
        Box::pin(async move {
            let both = both?;
            let mut g = both.lock().await;
            let (term, int) = &mut *g;
            tokio::select! {
                _ = term.recv() => Some("SIGTERM"),
                _ = int.recv() => Some("SIGINT"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Signals from a channel: the first asks for an orderly stop, the second returns.
    #[tokio::test(start_paused = true)]
    async fn a_second_signal_aborts_and_a_first_only_stops() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let next = move || {
            let rx = rx.clone();
            async move { rx.lock().await.recv().await }
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(shutdown_on_signals(next, stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!stop.is_cancelled() && !task.is_finished());
        tx.send("SIGTERM").expect("send");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(stop.is_cancelled(), "the first signal stops in order");
        assert!(!task.is_finished(), "and does not abort");
        tx.send("SIGINT").expect("send");
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the second signal aborts")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_asked_for_otherwise_still_waits_for_a_second_signal() {
        let stop = CancellationToken::new();
        let task = tokio::spawn(shutdown_on_signals(
            || std::future::ready(None::<&'static str>),
            stop.clone(),
        ));
        stop.cancel();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!task.is_finished(), "no signals: never an abort");
    }
}
