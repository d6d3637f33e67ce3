//! Webhook steps against a real HTTP server in the test: the signature verifies with the
//! shared secret (and only with it), 5xx is retried, 4xx is final, a dead endpoint costs
//! at most the step's limit.

use axum::http::{HeaderMap, StatusCode};
use floatover::site::hooks::{signature, webhook};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;

/// A receiver that answers `codes` in turn (then 200) and keeps what it got.
async fn receiver(codes: Vec<u16>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let answers = Arc::new(Mutex::new(codes));
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
        let (seen, answers) = (s2.clone(), answers.clone());
        async move {
            let sig = headers
                .get("x-floatover-signature")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            seen.lock().expect("lock").push((sig, body.to_vec()));
            let mut a = answers.lock().expect("lock");
            let code = if a.is_empty() { 200 } else { a.remove(0) };
            StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, seen)
}

/// What a receiver does: recompute the HMAC over the exact body, compare in constant time.
fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let want = signature(secret, body);
    want.len() == header.len()
        && want
            .bytes()
            .zip(header.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
}

#[tokio::test]
async fn a_signed_webhook_verifies_and_is_retried_on_5xx_only() {
    // SAFETY of the test: one test in this binary sets this variable.
    unsafe { std::env::set_var("FLOATOVER_TEST_HOOK_SECRET", "s3cr3t-key") };
    let payload = serde_json::json!({"site": "west", "step": "warm-caches", "sent_unix_ms": 1});
    let (url, seen) = receiver(vec![503, 502]).await;
    let (r, attempts) = webhook(
        &url,
        Some("FLOATOVER_TEST_HOOK_SECRET"),
        Duration::from_secs(2),
        3,
        Duration::from_secs(20),
        &payload,
        &|| Ok(()),
    )
    .await;
    assert_eq!(attempts, 3, "{r:?}");
    assert!(r.is_ok(), "{r:?}");
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.len(), 3);
    let (sig, body) = &got[2];
    let sig = sig.as_deref().expect("signed");
    assert!(sig.starts_with("sha256="), "{sig}");
    assert!(verify(b"s3cr3t-key", body, sig), "verifies with the secret");
    assert!(!verify(b"another-key", body, sig), "and only with it");
    let mut tampered = body.clone();
    tampered[2] ^= 1;
    assert!(
        !verify(b"s3cr3t-key", &tampered, sig),
        "a changed body fails"
    );
    let sent: serde_json::Value = serde_json::from_slice(body).expect("JSON body");
    assert_eq!(sent["site"], "west");

    // 4xx is final: no retry, the answer in the error.
    let (url, seen) = receiver(vec![403]).await;
    let (r, attempts) = webhook(
        &url,
        None,
        Duration::from_secs(2),
        3,
        Duration::from_secs(20),
        &payload,
        &|| Ok(()),
    )
    .await;
    assert_eq!(attempts, 1);
    assert!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("answered 403")),
        "{r:?}"
    );
    assert_eq!(
        seen.lock().expect("lock")[0].0,
        None,
        "unsigned without a secret"
    );

    // A missing secret is an error before any call.
    let (r, attempts) = webhook(
        &url,
        Some("FLOATOVER_TEST_NOT_SET"),
        Duration::from_secs(1),
        0,
        Duration::from_secs(5),
        &payload,
        &|| Ok(()),
    )
    .await;
    assert_eq!(attempts, 0);
    assert!(r.is_err_and(|e| e.to_string().contains("FLOATOVER_TEST_NOT_SET is not set")));
}

#[tokio::test(start_paused = true)]
async fn a_dead_endpoint_costs_at_most_the_limit() {
    // A listener that accepts and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", l.local_addr().expect("addr"));
    let t0 = tokio::time::Instant::now();
    let (r, _) = webhook(
        &url,
        None,
        Duration::from_secs(5),
        10,
        Duration::from_secs(12),
        &serde_json::json!({}),
        &|| Ok(()),
    )
    .await;
    assert!(r.is_err());
    assert!(
        t0.elapsed() <= Duration::from_secs(13),
        "{:?}",
        t0.elapsed()
    );
    drop(l);
}
