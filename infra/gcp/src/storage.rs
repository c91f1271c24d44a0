//! Cloud Storage for artifacts too large for a Firestore document (diffs, logs, transcripts), through
//! the JSON API's media upload and download.
//!
//! Objects are content-addressed (their name ends in the bytes' SHA-256), so an upload that is repeated
//! after a crash, or by a second delivery of the same message, writes the same object again and a
//! document never points at bytes it was not written with.

use reqwest::{Method, Url};
use sha2::{Digest, Sha256};

use crate::auth::GoogleAuth;
use crate::rest::{Api, ApiError};

/// Where the real API answers.
const STORAGE_URL: &str = "https://storage.googleapis.com";

/// Which bucket, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `https://storage.googleapis.com`, or a local server speaking the JSON API.
    pub base_url: String,
    /// The bucket.
    pub bucket: String,
    /// Credentials.
    pub auth: GoogleAuth,
}

impl StorageConfig {
    /// The real Cloud Storage, authenticated through the metadata server.
    #[must_use]
    pub fn cloud(bucket: &str) -> StorageConfig {
        StorageConfig {
            base_url: STORAGE_URL.to_owned(),
            bucket: bucket.to_owned(),
            auth: GoogleAuth::metadata_server(None),
        }
    }
}

/// A bucket.
#[derive(Debug, Clone)]
pub struct CloudStorage {
    api: Api,
    base: Url,
    bucket: String,
}

/// Why a Cloud Storage call failed; callers map it to their port's error.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket cannot be reached, or refused the call.
    #[error("cloud storage unavailable: {0}")]
    Unavailable(String),
    /// An object's bytes are not the bytes its name promises.
    #[error("cloud storage object {object} does not hold the bytes it was written with (sha256 mismatch)")]
    Mismatch {
        /// The object's name.
        object: String,
    },
}

impl CloudStorage {
    /// A client for `config.bucket`.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when `base_url` is not a URL or the HTTP client cannot be built.
    pub fn new(config: &StorageConfig) -> Result<CloudStorage, StorageError> {
        let base = Url::parse(&config.base_url).map_err(|e| {
            StorageError::Unavailable(format!(
                "the Cloud Storage URL {:?} is not a URL ({e}); give http(s)://HOST[:PORT]",
                config.base_url
            ))
        })?;
        let api = Api::new(&config.base_url, &config.auth).map_err(unavailable)?;
        Ok(CloudStorage { api, base, bucket: config.bucket.clone() })
    }

    /// The content-addressed object name for `bytes` under `prefix`.
    #[must_use]
    pub fn object_name(prefix: &str, bytes: &[u8]) -> String {
        format!("{}/{}", prefix.trim_end_matches('/'), hex(&Sha256::digest(bytes)))
    }

    /// Uploads `bytes` as `object` (replacing it).
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the upload is refused or the bucket is unreachable.
    pub async fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let mut url = self.base.clone();
        url.set_path(&format!("upload/storage/v1/b/{}/o", self.bucket));
        url.query_pairs_mut().append_pair("uploadType", "media").append_pair("name", object);
        let size = bytes.len();
        self.api
            .raw(Method::POST, url.as_str(), Some((bytes, "application/octet-stream")))
            .await
            .map_err(unavailable)?;
        tracing::debug!(object, size, "uploaded to cloud storage");
        Ok(())
    }

    /// The bytes of `object`, or `None` when there is no such object.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the bucket cannot be read.
    pub async fn get(&self, object: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut url = self.base.clone();
        url.set_path(&format!("storage/v1/b/{}/o", self.bucket));
        url.path_segments_mut()
            .map_err(|()| {
                StorageError::Unavailable("the Cloud Storage URL cannot have a path".into())
            })?
            .push(object);
        url.query_pairs_mut().append_pair("alt", "media");
        match self.api.raw(Method::GET, url.as_str(), None).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.code() == Some(404) => Ok(None),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// The bytes of a content-addressed `object`, checked against the digest its name ends with.
    ///
    /// # Errors
    /// [`StorageError::Mismatch`] when the bytes do not hash to the name, and what [`CloudStorage::get`]
    /// returns.
    pub async fn get_checked(&self, object: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(bytes) = self.get(object).await? else {
            return Ok(None);
        };
        let digest = hex(&Sha256::digest(&bytes));
        if object.rsplit('/').next() != Some(digest.as_str()) {
            return Err(StorageError::Mismatch { object: object.to_owned() });
        }
        Ok(Some(bytes))
    }
}

fn unavailable(error: ApiError) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
