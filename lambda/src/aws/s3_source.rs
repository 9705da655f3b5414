//! Objects streamed from S3: the body is handed on as it arrives, so memory
//! does not grow with the object's size.

use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::Client;

use crate::ports::{ObjectReader, ObjectSource, SourceError};
use crate::triggers::ObjectRef;

#[derive(Debug, Clone)]
pub struct S3Source {
    client: Client,
    /// The trail bucket's owner account: S3 refuses a read from a bucket
    /// that another account owns now (a deleted and re-created name).
    expected_owner: Option<String>,
}

impl S3Source {
    pub fn new(client: Client) -> Self {
        Self { client, expected_owner: None }
    }

    /// Every read names the account that must own the bucket.
    pub fn with_expected_owner(self, account: Option<String>) -> Self {
        Self { expected_owner: account, ..self }
    }
}

impl ObjectSource for S3Source {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectReader, SourceError> {
        let output = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(|err| {
                let status = err.raw_response().map(|response| response.status().as_u16());
                match (err.as_service_error(), status) {
                    (Some(GetObjectError::NoSuchKey(_)), _) | (_, Some(404)) => SourceError::NotFound,
                    // S3 answers 403 for a missing key too when s3:ListBucket is
                    // not granted: not found is then indistinguishable, and a
                    // retry shows whether the setup was mended.
                    (_, Some(403)) => SourceError::AccessDenied(err.into()),
                    _ => SourceError::Request(err.into()),
                }
            })?;
        Ok(Box::pin(output.body.into_async_read()))
    }
}
