//! The S3 lease store: one JSON object, changed only with conditional writes (`If-None-Match:
//! *` to create, `If-Match: <etag>` otherwise), so that the lease works on real S3 and on
//! LocalStack without any other coordination service. The protocol is [`super::protocol`].

use super::LeaderError;
use super::protocol::{CasLease, LeaseRecord, LeaseStore, Precondition, Put};
use crate::aws::{Failure, failure};
use aws_sdk_s3::primitives::ByteStream;

pub use super::protocol::LeaseTiming;

/// The S3 lease: the shared protocol over an S3 object.
pub type S3Lease = CasLease<S3Store>;

impl S3Lease {
    /// A lease on `s3://bucket/key` for `identity`.
    pub fn s3(
        client: aws_sdk_s3::Client,
        bucket: String,
        key: String,
        identity: String,
        timing: LeaseTiming,
    ) -> Self {
        CasLease::new(S3Store::new(client, bucket, key), identity, timing)
    }
}

/// One lease object in S3.
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    region: String,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, key: String) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "(no region)".into());
        S3Store {
            client,
            bucket,
            key,
            region,
        }
    }

    fn store_error<E, R>(
        &self,
        op: &'static str,
        e: &aws_sdk_s3::error::SdkError<E, R>,
    ) -> LeaderError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::aws::HttpStatus + 'static,
    {
        let (code, message) = match failure(e) {
            Failure::Transport { code, message }
            | Failure::Throttled { code, message }
            | Failure::Api { code, message } => (code, message),
        };
        LeaderError::Store {
            op,
            region: self.region.clone(),
            code,
            message: format!("{message} ({})", self.location()),
        }
    }
}

impl S3Store {
    /// The object's bytes and ETag, or None when it does not exist.
    pub async fn get_bytes(&self) -> Result<Option<(Vec<u8>, String)>, LeaderError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.store_error("GetObject", &e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| LeaderError::Store {
            op: "GetObject",
            region: self.region.clone(),
            code: "ConnectionError".into(),
            message: format!("reading {}: {e}", self.location()),
        })?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    /// Write `body` if `pre` holds (If-None-Match: * / If-Match: etag).
    pub async fn put_bytes(
        &self,
        body: Vec<u8>,
        pre: Precondition<'_>,
    ) -> Result<Put, LeaderError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match pre {
            Precondition::Matches(etag) => req.if_match(etag),
            Precondition::Absent => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(o) => Ok(Put::Done(o.e_tag().unwrap_or_default().to_string())),
            Err(e) => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let code = e.code().unwrap_or_default();
                let status = e.raw_response().map(|r| r.status().as_u16());
                if code == "PreconditionFailed"
                    || code == "ConditionalRequestConflict"
                    || status == Some(412)
                    || status == Some(409)
                {
                    Ok(Put::Conflict)
                } else {
                    Err(self.store_error("PutObject", &e))
                }
            }
        }
    }

    /// Where the object lives.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

#[async_trait::async_trait]
impl LeaseStore for S3Store {
    #[tracing::instrument(level = "debug", skip(self), fields(lease = %self.location()))]
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, LeaderError> {
        let Some((body, etag)) = self.get_bytes().await? else {
            return Ok(None);
        };
        let rec: LeaseRecord = serde_json::from_slice(&body).map_err(|e| LeaderError::Corrupt {
            location: self.location(),
            message: e.to_string(),
        })?;
        Ok(Some((rec, etag)))
    }

    #[tracing::instrument(level = "debug", skip(self, rec), fields(lease = %self.location(), epoch = rec.epoch))]
    async fn put(&self, rec: &LeaseRecord, pre: Precondition<'_>) -> Result<Put, LeaderError> {
        let body = serde_json::to_vec(rec).map_err(|e| LeaderError::Corrupt {
            location: self.location(),
            message: e.to_string(),
        })?;
        self.put_bytes(body, pre).await
    }

    fn location(&self) -> String {
        S3Store::location(self)
    }
}
