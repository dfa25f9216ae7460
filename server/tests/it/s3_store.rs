//! The S3 store against a real Garage, through the store API itself: parts of exactly the
//! planned size, pending pieces that carry a commit across writers (another instance is just
//! another `S3Store`), the finished object read back across part seams, deletion that leaves
//! nothing behind. The HTTP suites run the whole pipeline on Garage too; these pin down the
//! store's own contract with bytes that are easy to check.

use std::sync::Arc;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry::config::Config;
use ferry::store::s3::plan::PartPlan;
use ferry::store::s3::state::MultipartState;
use ferry::store::{self, ObjectStore, StoreError, WriteFrom};
use ferry_testkit::{Garage, eventually_async};
use tempfile::TempDir;
use uuid::Uuid;

use crate::harness::s3::s3_client;

/// One full part for uploads up to 625 GiB: 1024 stored segments of 65,564 bytes.
const PART: u64 = 1024 * 65_564;
/// The planned size of the uploads here (a part size of [`PART`]).
const MAX_PLAINTEXT_LEN: u64 = 10 << 30;

/// A store on `garage`'s bucket with its own data directory (its own spool).
async fn s3_store(garage: &Garage, data: &TempDir) -> Result<Arc<dyn ObjectStore>> {
    let url = garage.store_url();
    let data_dir = data.path().to_string_lossy().into_owned();
    let (key_id, secret) = (
        garage.access_key_id().to_owned(),
        garage.secret_access_key().to_owned(),
    );
    let config = Config::from_sources(|key| match key {
        "FERRY_STORE" => Some(url.clone()),
        "FERRY_DATA_DIR" => Some(data_dir.clone()),
        "AWS_ACCESS_KEY_ID" => Some(key_id.clone()),
        "AWS_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    })?;
    Ok(store::open(&config).await?)
}

/// Bytes that differ at every offset of interest.
fn pattern(start: u64, len: u64) -> Vec<u8> {
    (start..start + len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn parts_and_pending(state: &[u8]) -> Result<(usize, u64)> {
    let state = MultipartState::decode(state)?;
    Ok((state.parts.len(), state.pending_len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_object_survives_changes_of_writer_and_reads_across_seams() -> Result<()> {
    let garage = tokio::task::spawn_blocking(Garage::start).await??;
    let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = s3_store(&garage, &data_a).await?;
    let b = s3_store(&garage, &data_b).await?;
    let file = Uuid::new_v4();
    let total = 2 * PART + 3 * 65_564 + 1234;
    ensure!(PartPlan::for_len(MAX_PLAINTEXT_LEN)?.part_bytes() == PART);

    let first = 5 * 65_564;
    let state1 = a_commits_less_than_a_part(&a, file, first).await?;
    let state2 = b_continues_across_a_part_boundary(&b, file, first, state1).await?;
    a_resumes_at_the_boundary_and_finishes(&a, file, total, state2).await?;
    b_reads_the_whole_object_and_across_both_seams(&b, file, total).await?;
    deleting_leaves_nothing_behind(&garage, a, b, file).await
}

/// Writer 1 (instance A): less than a part (`first` bytes), committed → one pending piece.
/// Returns the committed state.
async fn a_commits_less_than_a_part(
    a: &Arc<dyn ObjectStore>,
    file: Uuid,
    first: u64,
) -> Result<Vec<u8>> {
    let state1 = blocking({
        let a = a.clone();
        move || {
            let mut w = a.open_writer(
                file,
                WriteFrom {
                    stored_offset: 0,
                    max_plaintext_len: MAX_PLAINTEXT_LEN,
                    state: None,
                },
            )?;
            w.append(&pattern(0, first))?;
            w.sync()
        }
    })
    .await?
    .context("S3 writers always return a state")?;
    ensure!(parts_and_pending(&state1)? == (0, first));
    Ok(state1)
}

/// Writer 2 (instance B) continues from `first`: crosses a part boundary, commits through a
/// syncer exactly there, then appends bytes a crash loses (never committed). Returns the
/// state committed at the boundary.
async fn b_continues_across_a_part_boundary(
    b: &Arc<dyn ObjectStore>,
    file: Uuid,
    first: u64,
    state1: Vec<u8>,
) -> Result<Vec<u8>> {
    let state2 = blocking({
        let b = b.clone();
        move || {
            let mut w = b.open_writer(
                file,
                WriteFrom {
                    stored_offset: first,
                    max_plaintext_len: MAX_PLAINTEXT_LEN,
                    state: Some(&state1),
                },
            )?;
            w.append(&pattern(first, PART - first))?;
            let at_boundary = w.syncer()?;
            w.append(&pattern(PART, 7 * 65_564))?;
            at_boundary.sync()
        }
    })
    .await?
    .context("state")?;
    ensure!(
        parts_and_pending(&state2)? == (1, 0),
        "one full part, no piece"
    );
    Ok(state2)
}

/// Writer 3 (instance A again) resumes at the boundary, writes the rest up to `total` and
/// finishes.
async fn a_resumes_at_the_boundary_and_finishes(
    a: &Arc<dyn ObjectStore>,
    file: Uuid,
    total: u64,
    state2: Vec<u8>,
) -> Result<()> {
    blocking({
        let a = a.clone();
        move || {
            let mut w = a.open_writer(
                file,
                WriteFrom {
                    stored_offset: PART,
                    max_plaintext_len: MAX_PLAINTEXT_LEN,
                    state: Some(&state2),
                },
            )?;
            w.append(&pattern(PART, total - PART))?;
            w.finish()
        }
    })
    .await
}

/// Read back from B: the whole object, ranges across both seams, and nothing past the end.
async fn b_reads_the_whole_object_and_across_both_seams(
    b: &Arc<dyn ObjectStore>,
    file: Uuid,
    total: u64,
) -> Result<()> {
    for (start, len) in [
        (0, total),
        (PART - 10, 20),
        (2 * PART - 65_564, 2 * 65_564),
        (total - 1, 1),
    ] {
        let got = blocking({
            let b = b.clone();
            move || {
                let mut r = b.open_reader(file, start..start + len)?;
                let mut buf = vec![0; len as usize];
                r.read_exact_at(start, &mut buf)?;
                Ok(buf)
            }
        })
        .await?;
        ensure!(got == pattern(start, len), "bytes {start}+{len} differ");
    }
    let past_end = blocking({
        let b = b.clone();
        move || {
            let mut r = b.open_reader(file, total - 1..total + 1)?;
            Ok(r.read_exact_at(total - 1, &mut [0; 2]))
        }
    })
    .await?;
    ensure!(
        matches!(past_end, Err(StoreError::Truncated)),
        "{past_end:?}"
    );
    Ok(())
}

/// Deleting (on A) leaves neither the object (B finds nothing) nor pieces nor multipart
/// uploads in the bucket.
async fn deleting_leaves_nothing_behind(
    garage: &Garage,
    a: Arc<dyn ObjectStore>,
    b: Arc<dyn ObjectStore>,
    file: Uuid,
) -> Result<()> {
    blocking(move || a.delete(file)).await?;
    let gone = blocking(move || b.open_reader(file, 0..1)?.read_exact_at(0, &mut [0; 1])).await;
    ensure!(
        gone.as_ref()
            .is_err_and(|e| format!("{e:#}").contains("not found")),
        "{gone:?}"
    );
    let s3 = s3_client(garage).await?;
    let objects = s3.list_objects_v2().bucket(garage.bucket()).send().await?;
    let keys: Vec<_> = objects.contents().iter().filter_map(|o| o.key()).collect();
    ensure!(keys.is_empty(), "objects left: {keys:?}");
    let uploads = s3
        .list_multipart_uploads()
        .bucket(garage.bucket())
        .send()
        .await?;
    ensure!(
        uploads.uploads().is_empty(),
        "multipart uploads left: {:?}",
        uploads.uploads()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_state_is_refused_instead_of_corrupting() -> Result<()> {
    let garage = tokio::task::spawn_blocking(Garage::start).await??;
    let data = tempfile::tempdir()?;
    let s3 = s3_store(&garage, &data).await?;
    let file = Uuid::new_v4();
    let result = blocking(move || {
        s3.open_writer(
            file,
            WriteFrom {
                stored_offset: 65_564,
                max_plaintext_len: 1 << 30,
                state: None,
            },
        )
        .map(|_| ())
    })
    .await;
    ensure!(
        result
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("no S3 state")),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_commits_on_fresh_writers_never_burn_a_part_number() -> Result<()> {
    let garage = tokio::task::spawn_blocking(Garage::start).await??;
    let data = tempfile::tempdir()?;
    let s3 = s3_store(&garage, &data).await?;
    let file = Uuid::new_v4();
    let total = 2 * PART + 12_345;
    write_in_9_mib_commits_from_fresh_writers(&s3, file, total).await?;
    let s3_client = s3_client(&garage).await?;
    the_object_has_three_parts_of_the_planned_size(&garage, &s3_client, file, total).await?;
    the_object_reads_back_whole(&s3, file, total).await?;
    no_pending_piece_is_left_once_completion_is_recorded(&garage, &s3_client, &s3, file).await
}

/// Writes `total` bytes in 9 MiB commits, each from a new writer (a new PATCH, possibly on
/// another instance), and each followed by bytes a broken connection loses; the last one
/// finishes the object.
async fn write_in_9_mib_commits_from_fresh_writers(
    s3: &Arc<dyn ObjectStore>,
    file: Uuid,
    total: u64,
) -> Result<()> {
    let chunk = 9 << 20;
    let mut offset = 0u64;
    let mut state: Option<Vec<u8>> = None;
    while offset < total {
        let len = chunk.min(total - offset);
        let last = offset + len == total;
        let (s3, saved) = (s3.clone(), state.clone());
        state = blocking(move || {
            let mut w = s3.open_writer(
                file,
                WriteFrom {
                    stored_offset: offset,
                    max_plaintext_len: MAX_PLAINTEXT_LEN,
                    state: saved.as_deref(),
                },
            )?;
            w.append(&pattern(offset, len))?;
            if last {
                w.finish()?;
                return Ok(None);
            }
            let state = w.sync()?;
            w.append(&pattern(offset + len, 65_564))?; // never committed
            Ok(state)
        })
        .await?;
        offset += len;
    }
    Ok(())
}

/// The object is `total` bytes in three parts (ETag `…-3`): two of [`PART`] and the rest.
async fn the_object_has_three_parts_of_the_planned_size(
    garage: &Garage,
    s3_client: &aws_sdk_s3::Client,
    file: Uuid,
    total: u64,
) -> Result<()> {
    let key = file.to_string();
    let head = s3_client
        .head_object()
        .bucket(garage.bucket())
        .key(&key)
        .send()
        .await?;
    ensure!(head.content_length() == Some(total as i64));
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    ensure!(etag.ends_with("-3"), "three parts, not more: ETag {etag}");
    for (number, expected) in [(1, PART), (2, PART), (3, total - 2 * PART)] {
        let part = s3_client
            .head_object()
            .bucket(garage.bucket())
            .key(&key)
            .part_number(number)
            .send()
            .await?;
        ensure!(
            part.content_length() == Some(expected as i64),
            "part {number}: {:?} bytes, expected {expected}",
            part.content_length()
        );
    }
    Ok(())
}

/// The store reads back exactly what was written.
async fn the_object_reads_back_whole(
    s3: &Arc<dyn ObjectStore>,
    file: Uuid,
    total: u64,
) -> Result<()> {
    let reader_store = s3.clone();
    let got = blocking(move || {
        let mut r = reader_store.open_reader(file, 0..total)?;
        let mut buf = vec![0; total as usize];
        r.read_exact_at(0, &mut buf)?;
        Ok(buf)
    })
    .await?;
    ensure!(
        got == pattern(0, total),
        "the object differs from what was written"
    );
    Ok(())
}

/// Once the completion is recorded (the tus layer then calls `forget_upload_state`; until
/// then a retry may need the pieces), no pending piece is left behind.
async fn no_pending_piece_is_left_once_completion_is_recorded(
    garage: &Garage,
    s3_client: &aws_sdk_s3::Client,
    s3: &Arc<dyn ObjectStore>,
    file: Uuid,
) -> Result<()> {
    s3.forget_upload_state(file);
    // Deletion of pieces runs in the background; give it a moment by polling.
    eventually_async(Duration::from_secs(5), async || {
        let remaining = s3_client
            .list_objects_v2()
            .bucket(garage.bucket())
            .prefix("pending/")
            .send()
            .await?
            .contents()
            .len();
        ensure!(
            remaining == 0,
            "{remaining} pending pieces left after completion"
        );
        Ok(())
    })
    .await
}
