//! The promotion record on a quorum of stores (`site::quorum_store`): a write counts once
//! a majority has it, a read returns the newest copy of a majority, a lagging copy is
//! brought up to date by the next write, two copies away stop both reads and writes
//! (naming the members), and the epoch and conflict rules of one store still hold.

use floatover::site::quorum_store::{QuorumRunStore, RecordCopy};
use floatover::site::record::SiteRuns;
use floatover::site::store::{MemRunStore, RunStore, StoreError, update};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A copy that can be cut off.
#[derive(Default)]
struct Away {
    inner: MemRunStore,
    away: AtomicBool,
}

impl Away {
    fn set(&self, away: bool) {
        self.away.store(away, Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.away.load(Ordering::SeqCst) {
            return Err(StoreError::Quorum {
                message: "GetObject in us-east-1: ConnectionError: black-holed by the test".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RunStore for Away {
    async fn load(&self) -> Result<(SiteRuns, Option<String>), StoreError> {
        self.check()?;
        self.inner.load().await
    }
    async fn save(&self, runs: &SiteRuns, version: Option<&str>) -> Result<String, StoreError> {
        self.check()?;
        self.inner.save(runs, version).await
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

fn three() -> (QuorumRunStore, Vec<Arc<Away>>) {
    let copies: Vec<Arc<Away>> = (0..3).map(|_| Arc::new(Away::default())).collect();
    let store = QuorumRunStore::new(
        copies
            .iter()
            .zip(["use1", "usw2", "use2"])
            .map(|(c, name)| RecordCopy {
                member: name.into(),
                store: c.clone() as Arc<dyn RunStore>,
            })
            .collect(),
    );
    (store, copies)
}

async fn active(c: &Away) -> Option<String> {
    c.inner.load().await.expect("load").0.active_site
}

#[tokio::test]
async fn a_write_counts_on_a_majority_and_the_next_one_repairs_a_lagging_copy() {
    let (q, copies) = three();
    update(&q, 3, |r| r.active_site = Some("east".into()))
        .await
        .expect("all up");
    for c in &copies {
        assert_eq!(active(c).await.as_deref(), Some("east"));
    }

    // us-east-1's copy is away: the write still counts.
    copies[0].set(true);
    let (runs, ()) = update(&q, 3, |r| r.active_site = Some("west".into()))
        .await
        .expect("a majority is enough");
    assert_eq!(runs.revision, 2);
    copies[0].set(false);
    assert_eq!(active(&copies[0]).await.as_deref(), Some("east"), "lagging");

    // A read that misses one of the copies that has it still sees the write.
    copies[1].set(true);
    let (read, _) = q.load().await.expect("majority");
    assert_eq!(
        read.active_site.as_deref(),
        Some("west"),
        "newest of a majority"
    );
    copies[1].set(false);

    // The next write brings the lagging copy up to date.
    update(&q, 3, |r| r.history.clear()).await.expect("write");
    for c in &copies {
        assert_eq!(active(c).await.as_deref(), Some("west"));
    }
}

#[tokio::test]
async fn two_copies_away_stop_reads_and_writes_and_say_which() {
    let (q, copies) = three();
    update(&q, 1, |r| r.active_site = Some("east".into()))
        .await
        .expect("write");
    copies[0].set(true);
    copies[2].set(true);
    let err = q
        .load()
        .await
        .expect_err("a minority is not enough")
        .to_string();
    assert!(err.contains("1 of 3 copies answered, 2 needed"), "{err}");
    assert!(
        err.contains("use1: ") && err.contains("use2: ") && !err.contains("usw2: "),
        "{err}"
    );
    let err = update(&q, 1, |r| r.active_site = Some("west".into()))
        .await
        .expect_err("no write on a minority");
    assert!(err.to_string().contains("2 needed"), "{err}");
    copies[0].set(false);
    copies[2].set(false);
    assert_eq!(
        active(&copies[1]).await.as_deref(),
        Some("east"),
        "nothing half-done"
    );
}

#[tokio::test]
async fn a_newer_epoch_fences_and_a_concurrent_writer_conflicts() {
    let (q, _copies) = three();
    update(&q, 5, |r| r.active_site = Some("east".into()))
        .await
        .expect("write");
    let err = update(&q, 4, |r| r.active_site = Some("west".into()))
        .await
        .expect_err("older epoch");
    assert!(
        matches!(
            err,
            StoreError::Fenced {
                found: 5,
                ours: 4,
                ..
            }
        ),
        "{err}"
    );

    let (a, va) = q.load().await.expect("load");
    let (b, vb) = q.load().await.expect("load");
    q.save(&a, va.as_deref()).await.expect("first writer");
    let err = q.save(&b, vb.as_deref()).await.expect_err("second writer");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let bad = q
        .save(&b, Some("not a version"))
        .await
        .expect_err("bad version");
    assert!(bad.to_string().contains("not a version"), "{bad}");
}
