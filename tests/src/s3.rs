//! An S3 client on a test's Garage, configured exactly as Ferry configures its own
//! (`ferry::store::s3::build_client`), to look at what instances stored behind their back.

use anyhow::Result;
use ferry::config::S3Credentials;
use ferry::store::s3::{S3Location, build_client};
use ferry_testkit::Garage;

/// A client on `garage` with its key (`ferry-test`), from Ferry's own client builder: the
/// endpoint and region of its store URL, path-style addressing, static credentials.
pub async fn s3_client(garage: &Garage) -> Result<aws_sdk_s3::Client> {
    let location = S3Location::parse(&garage.store_url())?;
    let credentials = S3Credentials {
        access_key_id: garage.access_key_id().to_owned(),
        secret_access_key: garage.secret_access_key().to_owned(),
        session_token: None,
    };
    Ok(build_client(&location, Some(&credentials)).await)
}
