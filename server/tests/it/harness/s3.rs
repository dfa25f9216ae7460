//! The S3 side of the in-process tests: one real Garage per test binary, shared by every test
//! that runs on the S3 store, and a fresh bucket per test, with an `aws-sdk-s3` client to look
//! at (and tamper with) what Ferry stored there.
//!
//! Garage starts lazily, the first time a test asks for a bucket, and lives in a `static`, so
//! it is never dropped: `ferry_testkit::Garage` runs it under a watchdog that kills it (and
//! removes its directory) as soon as this test process is gone, however the process ends.
//! Clients come from Ferry's own builder (`store::s3::build_client`), through [`s3_client`].

use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use ferry::config::S3Credentials;
use ferry::store::s3::{S3Location, build_client};
use ferry_testkit::Garage;
use uuid::Uuid;

/// The Garage of this test binary, or why it could not start.
static GARAGE: OnceLock<Result<Garage, String>> = OnceLock::new();

/// The shared Garage, started on first use (blocking for a second or two).
pub fn shared_garage() -> Result<&'static Garage> {
    GARAGE
        .get_or_init(|| Garage::start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("the shared Garage did not start: {e}"))
}

/// A plain S3 client on `garage` (its key `ferry-test`), configured as Ferry configures its
/// own: to look at a bucket behind the store's back.
pub async fn s3_client(garage: &Garage) -> Result<Client> {
    let location = S3Location::parse(&garage.store_url())?;
    let credentials = S3Credentials {
        access_key_id: garage.access_key_id().to_owned(),
        secret_access_key: garage.secret_access_key().to_owned(),
        session_token: None,
    };
    Ok(build_client(&location, Some(&credentials)).await)
}

/// A bucket of the shared Garage for one test, with a client that sees what Ferry stored.
pub struct TestBucket {
    /// The bucket's name (`ferry-t-<random>`).
    pub name: String,
    /// Ferry's `FERRY_STORE` for it.
    pub store_url: String,
    /// `AWS_ACCESS_KEY_ID` for Ferry's configuration.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY` for Ferry's configuration.
    pub secret_access_key: String,
    /// A client on the bucket's Garage (path-style, eu-central-1).
    pub client: Client,
}

impl TestBucket {
    /// Creates a fresh bucket in the shared Garage (starting Garage if needed).
    pub async fn create() -> Result<Self> {
        let name = format!("ferry-t-{}", Uuid::new_v4().simple());
        let garage = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || -> Result<&'static Garage> {
                let garage = shared_garage()?;
                garage
                    .create_bucket(&name)
                    .with_context(|| format!("creating bucket {name} in the shared Garage"))?;
                Ok(garage)
            })
            .await??
        };
        Ok(TestBucket {
            store_url: garage.store_url_for(&name),
            access_key_id: garage.access_key_id().to_owned(),
            secret_access_key: garage.secret_access_key().to_owned(),
            client: s3_client(garage).await?,
            name,
        })
    }

    /// The key of a file's completed object: its id, hyphenated, at the bucket's root (as
    /// `S3Store`'s `object_key` names it in `server/src/store/s3/mod.rs`).
    pub fn object_key(id: Uuid) -> String {
        id.to_string()
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.with_context(|| format!("ListObjectsV2 {}", self.name))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// Keys of the multipart uploads in progress.
    pub async fn multipart_uploads(&self) -> Result<Vec<String>> {
        let answer = self
            .client
            .list_multipart_uploads()
            .bucket(&self.name)
            .send()
            .await
            .with_context(|| format!("ListMultipartUploads {}", self.name))?;
        Ok(answer
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_owned))
            .collect())
    }

    /// Whether anything of file `id` is in the bucket: its object, a piece of it under any
    /// key naming it, or a multipart upload in progress.
    pub async fn holds_anything_of(&self, id: Uuid) -> Result<bool> {
        let name = id.to_string();
        let simple = id.simple().to_string();
        let names_it = |key: &String| key.contains(&name) || key.contains(&simple);
        Ok(self.keys().await?.iter().any(names_it)
            || self.multipart_uploads().await?.iter().any(names_it))
    }

    /// Every object in the bucket whose key names file `id` (its object, its pending pieces),
    /// with its contents, in key order.
    pub async fn objects_of(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>> {
        let name = id.to_string();
        let simple = id.simple().to_string();
        let mut keys: Vec<String> = self
            .keys()
            .await?
            .into_iter()
            .filter(|k| k.contains(&name) || k.contains(&simple))
            .collect();
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let answer = self
                .client
                .get_object()
                .bucket(&self.name)
                .key(&key)
                .send()
                .await
                .with_context(|| format!("GetObject {}/{key}", self.name))?;
            let body = answer
                .body
                .collect()
                .await
                .with_context(|| format!("GetObject {}/{key}: body", self.name))?;
            out.push((key, body.into_bytes().to_vec()));
        }
        Ok(out)
    }

    /// The completed object of file `id`, whole.
    pub async fn read_object(&self, id: Uuid) -> Result<Vec<u8>> {
        let key = Self::object_key(id);
        let answer = match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(&key)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                let keys = self.keys().await.unwrap_or_default();
                bail!(
                    "GetObject {}/{key}: {}; the bucket holds {keys:?}",
                    self.name,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                );
            }
        };
        let body = answer
            .body
            .collect()
            .await
            .with_context(|| format!("GetObject {}/{key}: body", self.name))?;
        Ok(body.into_bytes().to_vec())
    }

    /// Replaces the completed object of file `id` (to damage or truncate it).
    pub async fn write_object(&self, id: Uuid, bytes: &[u8]) -> Result<()> {
        let key = Self::object_key(id);
        self.client
            .put_object()
            .bucket(&self.name)
            .key(&key)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .with_context(|| format!("PutObject {}/{key}", self.name))?;
        Ok(())
    }
}
