//! EEA residency at start-up, with the real binary and a real Garage (whose region is
//! eu-central-1): `ferry serve` refuses to start — non-zero exit, a message on stderr that
//! names the problem — when the configured region is not on the EEA allowlist, when the
//! bucket is not in the configured region, and when the bucket does not exist. The same
//! Garage, bucket and credentials with the right region start normally (so each refusal is
//! about what the test changed, not about the set-up).

use std::time::Duration;

use anyhow::{Result, ensure};
use ferry_e2e::{Garage, Refusal, Server, serve_refusal};

/// How long a refusing `ferry serve` may take to exit (the store's requests time out sooner).
const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// `FERRY_STORE` for `bucket` of `garage` with `region` (the endpoint is Garage's).
fn store_url(garage: &Garage, bucket: &str, region: &str) -> String {
    format!(
        "s3://{bucket}?endpoint={}&region={region}",
        garage.endpoint()
    )
}

/// Runs `ferry serve` against `garage` with `FERRY_STORE=store`, expecting a refusal whose
/// stderr contains every one of `expected`.
fn expect_refusal(garage: &Garage, store: &str, expected: &[&str]) -> Result<Refusal> {
    let dir = tempfile::tempdir()?;
    let mut env: Vec<(&str, &str)> = garage.env().to_vec();
    env.push(("FERRY_STORE", store));
    let refusal = serve_refusal(dir.path().join("data"), &env, EXIT_WITHIN)?;
    eprintln!(
        "FERRY_STORE={store}: {}\nstderr:\n{}",
        refusal.status, refusal.stderr
    );
    ensure!(
        !refusal.success,
        "FERRY_STORE={store}: ferry serve exited with success; it must refuse to start with a \
         non-zero status\nstdout:\n{}\nstderr:\n{}",
        refusal.stdout,
        refusal.stderr
    );
    for text in expected {
        ensure!(
            refusal.stderr.contains(text),
            "FERRY_STORE={store}: ferry serve refused to start ({}), but its stderr does not \
             say {text:?}\nstdout:\n{}\nstderr:\n{}",
            refusal.status,
            refusal.stdout,
            refusal.stderr
        );
    }
    Ok(refusal)
}

#[test]
fn the_right_region_starts() -> Result<()> {
    let garage = Garage::start()?;
    let dir = tempfile::tempdir()?;
    let store = store_url(&garage, garage.bucket(), garage.region());
    let mut env: Vec<(&str, &str)> = garage.env().to_vec();
    env.push(("FERRY_STORE", &store));
    let mut server = Server::start_with_env(dir.path().join("data"), &env)?;
    ensure!(
        server.is_running(),
        "ferry serve on {store} is not running after it answered /healthz"
    );
    Ok(())
}

#[test]
fn a_region_outside_the_eea_is_refused() -> Result<()> {
    let garage = Garage::start()?;
    expect_refusal(
        &garage,
        &store_url(&garage, garage.bucket(), "us-east-1"),
        &["\"us-east-1\" is not on the EEA allowlist"],
    )?;
    // Not in the EEA either, though in Europe: London and Zurich.
    for region in ["eu-west-2", "eu-central-2"] {
        expect_refusal(
            &garage,
            &store_url(&garage, garage.bucket(), region),
            &[&format!("{region:?} is not on the EEA allowlist")],
        )?;
    }
    Ok(())
}

#[test]
fn a_bucket_in_another_region_is_refused() -> Result<()> {
    // eu-west-1 is on the allowlist, but Garage's bucket is in eu-central-1: Garage refuses
    // requests signed for eu-west-1 (AuthorizationHeaderMalformed, as AWS does) rather than
    // report a location, and Ferry must take that as "the bucket is elsewhere".
    let garage = Garage::start()?;
    let bucket = garage.bucket();
    expect_refusal(
        &garage,
        &store_url(&garage, bucket, "eu-west-1"),
        &[
            &format!("bucket {bucket:?} is located in"),
            "the configured region is \"eu-west-1\"",
        ],
    )?;
    Ok(())
}

#[test]
fn a_missing_bucket_is_refused() -> Result<()> {
    let garage = Garage::start()?;
    expect_refusal(
        &garage,
        &store_url(&garage, "ferry-no-such-bucket", garage.region()),
        &["bucket \"ferry-no-such-bucket\" does not exist"],
    )?;
    Ok(())
}
