//! Hook steps: a program (`exec`) or an HTTP endpoint (`webhook`), each given the run's
//! JSON, each retried within the step's limit. A webhook body is signed with HMAC-SHA256
//! when the step names a secret: header `X-Floatover-Signature: sha256=<hex>` over the
//! exact body bytes (which carry `sent_unix_ms`, so a receiver can refuse replays).

use crate::leader::FenceError;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// The signature header's value for `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn tail(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    let start = s.char_indices().rev().nth(300).map_or(0, |(i, _)| i);
    s[start..].replace('\n', " | ")
}

/// Why a hook failed, in words the run record shows.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("no command")]
    NoCommand,
    #[error("cannot run {prog}: {source}")]
    Spawn {
        prog: String,
        #[source]
        source: std::io::Error,
    },
    /// The program exited non-zero, or the endpoint answered, without success (the last
    /// attempt's words).
    #[error("{0}")]
    Failed(String),
    #[error("{what} still running after {} (killed)", human(.limit))]
    StillRunning { what: String, limit: Duration },
    #[error("{url}: no answer within {}", human(.limit))]
    NoAnswer { url: String, limit: Duration },
    #[error("secret_env {0} is not set: cannot sign the call")]
    NoSecret(String),
    #[error("http client: {0}")]
    Client(#[source] reqwest::Error),
    /// This replica may no longer act: the hook was not called (again).
    #[error("not called: {0}")]
    Fenced(#[from] FenceError),
}

fn human(d: &Duration) -> String {
    floatover_core::human::duration(*d)
}

/// Asked right before each attempt: may this replica still act?
pub type Gate<'a> = &'a (dyn Fn() -> Result<(), FenceError> + Send + Sync);

fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(2))
}

/// How one attempt of a hook went.
enum Attempt {
    /// Final: success, or a failure that another attempt would not change.
    Done(Result<String, HookError>),
    /// Failed, worth another attempt (the words for the record if it was the last).
    Again(String),
}

/// Run `once` up to `retries + 1` times, each only if `gate` allows it, with a growing
/// pause between attempts, never starting one whose pause would end past `deadline`.
/// Returns the outcome and the attempts made.
async fn attempts<F, Fut>(
    retries: u32,
    deadline: Instant,
    gate: Gate<'_>,
    mut once: F,
) -> (Result<String, HookError>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let mut last = String::new();
    for attempt in 0..=retries {
        if let Err(e) = gate() {
            return (Err(e.into()), attempt);
        }
        match once().await {
            Attempt::Done(r) => return (r, attempt + 1),
            Attempt::Again(why) => last = why,
        }
        if attempt < retries {
            let pause = backoff(attempt);
            if Instant::now() + pause >= deadline {
                return (Err(HookError::Failed(last)), attempt + 1);
            }
            tokio::time::sleep(pause).await;
        }
    }
    (Err(HookError::Failed(last)), retries + 1)
}

/// Run `command` (no shell) with `payload` on stdin until it exits 0, at most
/// `retries + 1` times within `limit`, each attempt only if `gate` allows it. Returns the
/// outcome and the attempts made.
pub async fn exec(
    command: &[String],
    retries: u32,
    limit: Duration,
    payload: &serde_json::Value,
    gate: Gate<'_>,
) -> (Result<String, HookError>, u32) {
    let deadline = Instant::now() + limit;
    let body = payload.to_string();
    let Some((prog, args)) = command.split_first() else {
        return (Err(HookError::NoCommand), 0);
    };
    let body = &body;
    attempts(retries, deadline, gate, move || async move {
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in [
            ("site", "FLOATOVER_SITE"),
            ("run", "FLOATOVER_RUN"),
            ("step", "FLOATOVER_STEP"),
        ] {
            if let Some(s) = payload[k].as_str() {
                cmd.env(v, s);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(source) => {
                let prog = prog.clone();
                return Attempt::Done(Err(HookError::Spawn { prog, source }));
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its stdin is fine.
            let _ = stdin.write_all(body.as_bytes()).await;
        }
        match tokio::time::timeout_at(deadline, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {
                Attempt::Done(Ok(format!("exit 0 {}", tail(&out.stdout))
                    .trim()
                    .to_string()))
            }
            Ok(Ok(out)) => Attempt::Again(format!(
                "{prog} exited with {}: {}",
                out.status
                    .code()
                    .map_or("a signal".into(), |c| c.to_string()),
                tail(&out.stderr)
            )),
            Ok(Err(e)) => Attempt::Again(format!("{prog}: {e}")),
            Err(_) => {
                let what = prog.clone();
                Attempt::Done(Err(HookError::StillRunning { what, limit }))
            }
        }
    })
    .await
}

/// POST `payload` to `url` until it answers 2xx: at most `retries + 1` attempts of
/// `timeout` each, within `limit`. 5xx, 429 and transport errors are retried; other
/// answers are final.
pub async fn webhook(
    url: &str,
    secret_env: Option<&str>,
    timeout: Duration,
    retries: u32,
    limit: Duration,
    payload: &serde_json::Value,
    gate: Gate<'_>,
) -> (Result<String, HookError>, u32) {
    let deadline = Instant::now() + limit;
    let body = payload.to_string().into_bytes();
    let sig = match secret_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(k) if !k.is_empty() => Some(signature(k.as_bytes(), &body)),
            _ => return (Err(HookError::NoSecret(var.into())), 0),
        },
    };
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => return (Err(HookError::Client(e)), 0),
    };
    let (body, client, sig) = (&body, &client, &sig);
    attempts(retries, deadline, gate, move || async move {
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("floatover/", env!("CARGO_PKG_VERSION")),
            )
            .body(body.clone());
        if let Some(s) = sig {
            req = req.header("x-floatover-signature", s);
        }
        match tokio::time::timeout_at(deadline, req.send()).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                Attempt::Done(Ok(format!("{url} answered {}", resp.status().as_u16())))
            }
            Ok(Ok(resp)) => {
                let code = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let last = format!(
                    "{url} answered {}: {}",
                    code.as_u16(),
                    tail(text.as_bytes())
                );
                if code.is_server_error() || code.as_u16() == 429 {
                    Attempt::Again(last)
                } else {
                    Attempt::Done(Err(HookError::Failed(last)))
                }
            }
            Ok(Err(e)) => Attempt::Again(format!("{url}: {e}")),
            Err(_) => {
                let url = url.to_string();
                Attempt::Done(Err(HookError::NoAnswer { url, limit }))
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn exec_retries_then_reports_the_exit_and_stderr() {
        let p = serde_json::json!({"site": "dr"});
        let cmd = vec!["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()];
        let open = || Ok(());
        let (r, n) = exec(&cmd, 1, Duration::from_secs(10), &p, &open).await;
        assert_eq!(n, 2);
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("sh exited with 3: boom".into())
        );
        let cmd = vec![
            "sh".into(),
            "-c".into(),
            "test \"$FLOATOVER_SITE\" = dr && cat".into(),
        ];
        let (r, n) = exec(&cmd, 0, Duration::from_secs(10), &p, &open).await;
        assert_eq!(n, 1);
        assert_eq!(r.ok(), Some("exit 0 {\"site\":\"dr\"}".into()));
        let cmd = vec!["/nonexistent/hook".into()];
        let (r, _) = exec(&cmd, 3, Duration::from_secs(10), &p, &open).await;
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("cannot run /nonexistent/hook"), "{e}");
        let shut = || Err(FenceError::NotLeader);
        let (r, n) = exec(&cmd, 3, Duration::from_secs(10), &p, &shut).await;
        assert_eq!(n, 0, "a fenced hook is never started");
        assert!(matches!(r, Err(HookError::Fenced(_))));
    }
}
