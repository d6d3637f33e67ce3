//! The promotion record on a quorum of stores (`leader.backend: quorum`): one copy beside
//! each lease member, read and written on all at once, good while a majority answers. So
//! a promotion started in one region resumes from another after the first is lost, which
//! is the point of a DR site.
//!
//! A write lands on a majority before it counts; a read takes a majority and keeps the
//! copy with the highest (epoch, revision). Any two majorities share a member, so a read
//! always sees the last write that counted. Each copy is written with its own conditional
//! write (the version read from that member), so a concurrent writer makes the write fail
//! as a conflict rather than mix two records; and only the leader writes, under its epoch
//! ([`super::store::update`] refuses a record written by a newer one). Copies that missed
//! a write (their member was away) are brought up to date by the next one.

use super::record::SiteRuns;
use super::store::{RunStore, StoreError};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::future::Future;
use std::sync::Arc;

/// Run one call per copy at once and collect the answers until `enough` of them succeeded
/// (or all answered). Calls still under way are dropped: a copy that did not answer in time
/// is left out, as if it had not answered at all, so one black-holed member costs nothing.
async fn first_majority<T, F>(
    calls: impl Iterator<Item = F>,
    enough: usize,
    ok: impl Fn(&T) -> bool,
) -> Vec<(usize, T)>
where
    F: Future<Output = T>,
{
    let mut pending: FuturesUnordered<_> = calls
        .enumerate()
        .map(|(i, f)| async move { (i, f.await) })
        .collect();
    let mut got = Vec::new();
    let mut good = 0;
    while good < enough {
        match pending.next().await {
            Some((i, t)) => {
                good += usize::from(ok(&t));
                got.push((i, t));
            }
            None => break,
        }
    }
    // Answers that are already here count too.
    while let Some(Some((i, t))) = pending.next().now_or_never() {
        got.push((i, t));
    }
    got
}

/// One copy of the record and the member it sits beside.
pub struct RecordCopy {
    pub member: String,
    pub store: Arc<dyn RunStore>,
}

/// The record on a majority of `copies`.
pub struct QuorumRunStore {
    copies: Vec<RecordCopy>,
}

impl QuorumRunStore {
    pub fn new(copies: Vec<RecordCopy>) -> Self {
        QuorumRunStore { copies }
    }

    fn majority(&self) -> usize {
        self.copies.len() / 2 + 1
    }

    /// A majority did not answer: say which members did not, and why.
    fn too_few(&self, what: &str, failures: &[(usize, StoreError)]) -> StoreError {
        let detail: Vec<String> = failures
            .iter()
            .map(|(i, e)| format!("{}: {e}", self.copies[*i].member))
            .collect();
        StoreError::Quorum {
            message: format!(
                "{what}: {} of {} copies answered, {} needed; {}",
                self.copies.len() - failures.len(),
                self.copies.len(),
                self.majority(),
                detail.join("; ")
            ),
        }
    }
}

/// The copies that gave no answer before a majority did, as failures.
fn unanswered<T>(n: usize, answers: &[(usize, T)]) -> Vec<(usize, StoreError)> {
    (0..n)
        .filter(|i| answers.iter().all(|(j, _)| j != i))
        .map(|i| {
            (
                i,
                StoreError::Quorum {
                    message: "no answer before a majority did".into(),
                },
            )
        })
        .collect()
}

/// The composite version: each copy's version as read (None: absent, or not read).
fn encode(versions: &[Option<String>]) -> String {
    serde_json::to_string(versions).unwrap_or_default()
}

fn decode(version: Option<&str>, n: usize) -> Result<Vec<Option<String>>, StoreError> {
    match version {
        None => Ok(vec![None; n]),
        Some(v) => serde_json::from_str::<Vec<Option<String>>>(v)
            .ok()
            .filter(|vs| vs.len() == n)
            .ok_or_else(|| StoreError::Quorum {
                message: format!("not a version of this record's {n} copies: {v}"),
            }),
    }
}

#[async_trait::async_trait]
impl RunStore for QuorumRunStore {
    async fn load(&self) -> Result<(SiteRuns, Option<String>), StoreError> {
        let answers = first_majority(
            self.copies.iter().map(|c| c.store.load()),
            self.majority(),
            Result::is_ok,
        )
        .await;
        let mut versions = vec![None; self.copies.len()];
        let mut failures = unanswered(self.copies.len(), &answers);
        let mut newest: Option<SiteRuns> = None;
        for (i, a) in answers {
            match a {
                Ok((runs, version)) => {
                    versions[i] = version;
                    if newest
                        .as_ref()
                        .is_none_or(|n| (runs.epoch, runs.revision) > (n.epoch, n.revision))
                    {
                        newest = Some(runs);
                    }
                }
                Err(e) => failures.push((i, e)),
            }
        }
        if self.copies.len() - failures.len() < self.majority() {
            return Err(self.too_few("reading the site record", &failures));
        }
        // Members that did not answer are not written next time (their version is
        // unknown); `failed` marks them.
        let read: Vec<Option<String>> = versions
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if failures.iter().any(|(f, _)| *f == i) {
                    Some(String::from(UNREAD))
                } else {
                    v
                }
            })
            .collect();
        Ok((newest.unwrap_or_default(), Some(encode(&read))))
    }

    async fn save(&self, runs: &SiteRuns, version: Option<&str>) -> Result<String, StoreError> {
        let read = decode(version, self.copies.len())?;
        let writes = self.copies.iter().zip(&read).map(|(c, v)| async move {
            match v.as_deref() {
                Some(UNREAD) => None,
                v => Some(c.store.save(runs, v).await),
            }
        });
        let answers = first_majority(writes, self.majority(), |a| matches!(a, Some(Ok(_)))).await;
        let mut versions = vec![Some(String::from(UNREAD)); self.copies.len()];
        let mut failures = unanswered(self.copies.len(), &answers);
        let mut conflicts = 0;
        for (i, a) in answers {
            match a {
                Some(Ok(v)) => versions[i] = Some(v),
                Some(Err(e)) => {
                    conflicts += usize::from(matches!(e, StoreError::Conflict(_)));
                    versions[i] = Some(String::from(UNREAD));
                    failures.push((i, e));
                }
                None => {
                    versions[i] = Some(String::from(UNREAD));
                    failures.push((
                        i,
                        StoreError::Quorum {
                            message: "not read before this write".into(),
                        },
                    ));
                }
            }
        }
        if self.copies.len() - failures.len() < self.majority() {
            if conflicts > 0 {
                return Err(StoreError::Conflict(self.location()));
            }
            return Err(self.too_few("writing the site record", &failures));
        }
        Ok(encode(&versions))
    }

    fn location(&self) -> String {
        let names: Vec<&str> = self.copies.iter().map(|c| c.member.as_str()).collect();
        format!("a majority of [{}]", names.join(", "))
    }
}

/// The version of a copy that did not answer its read: never written until read again.
const UNREAD: &str = "\u{0}unread";
