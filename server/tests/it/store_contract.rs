//! What the upload and download pipelines rely on from any object store, checked the same
//! way against the disk store and against a bucket of a real Garage: a writer resumed from a
//! commit continues exactly there (bytes appended after it are overwritten, never kept); a
//! checkpoint at the store's own rhythm, synced while appends go on, resumes exactly; a
//! completion retried after its database commit failed keeps the object; ranges read back
//! across every seam and a read past the end is `Truncated`; deleting leaves nothing.
//!
//! `s3_store` pins down what only S3 has (part sizes, pending pieces, several instances).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use ferry::config::Config;
use ferry::store::disk::DiskStore;
use ferry::store::{self, ObjectStore, ObjectWriter, StoreError, StoreState, WriteFrom};
use tempfile::TempDir;
use uuid::Uuid;

use crate::harness::s3::TestBucket;

/// Bytes of one stored segment (64 KiB of plaintext sealed): writers resume at multiples.
const SEGMENT: u64 = 65_564;
/// The planned size of every upload here (it fixes the S3 part size: 1024 segments).
const MAX_PLAINTEXT_LEN: u64 = 1 << 30;

/// Runs each scenario once on the disk store and once on a fresh Garage bucket.
macro_rules! on_both_stores {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn disk() -> anyhow::Result<()> {
                super::$scenario(super::Subject::disk()?).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn garage() -> anyhow::Result<()> {
                super::$scenario(super::Subject::garage().await?).await
            }
        }
    )+};
}

on_both_stores!(
    a_resumed_writer_continues_exactly_at_the_commit,
    a_checkpoint_at_the_stores_rhythm_resumes_exactly,
    a_retried_completion_keeps_the_object,
    deleting_leaves_nothing_behind,
);

/// A store under test, with what it needs kept alive and a way to look behind its back.
struct Subject {
    store: Arc<dyn ObjectStore>,
    /// The disk store's root, or the S3 store's spool directory.
    dir: TempDir,
    bucket: Option<TestBucket>,
}

impl Subject {
    fn disk() -> Result<Subject> {
        let dir = tempfile::tempdir()?;
        Ok(Subject {
            store: Arc::new(DiskStore::open(dir.path())?),
            dir,
            bucket: None,
        })
    }

    async fn garage() -> Result<Subject> {
        let bucket = TestBucket::create().await?;
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().to_string_lossy().into_owned();
        let config = Config::from_sources(|key| match key {
            "FERRY_STORE" => Some(bucket.store_url.clone()),
            "FERRY_DATA_DIR" => Some(data_dir.clone()),
            "AWS_ACCESS_KEY_ID" => Some(bucket.access_key_id.clone()),
            "AWS_SECRET_ACCESS_KEY" => Some(bucket.secret_access_key.clone()),
            _ => None,
        })?;
        Ok(Subject {
            store: store::open(&config).await?,
            dir,
            bucket: Some(bucket),
        })
    }

    /// Runs `step` on a blocking thread with the store (its methods block).
    async fn run<T: Send + 'static>(
        &self,
        step: impl FnOnce(&dyn ObjectStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || step(store.as_ref())).await??)
    }

    /// A write of the pattern from `(start, state)` (a commit's offset and state) to `end`, committed
    /// (`sync`), then `lost` more bytes a crash loses; returns the committed state.
    async fn commit_then_crash(
        &self,
        file: Uuid,
        (start, state): (u64, StoreState),
        end: u64,
        lost: u64,
    ) -> Result<StoreState> {
        self.run(move |store| {
            let mut writer = store.open_writer(file, from(start, &state))?;
            append(writer.as_mut(), start, end - start)?;
            let state = writer.sync()?;
            append_lost(writer.as_mut(), lost)?;
            writer.quiesce();
            Ok(state)
        })
        .await
    }

    /// A write of the rest of the pattern from `(start, state)` (a commit's offset and state) that ends
    /// the object at `total` and forgets the upload state, as a recorded completion does.
    async fn finish(
        &self,
        file: Uuid,
        (start, state): (u64, StoreState),
        total: u64,
    ) -> Result<()> {
        self.run(move |store| {
            let mut writer = store.open_writer(file, from(start, &state))?;
            ensure_store(
                writer.completed_len().is_none(),
                "unfinished object seen complete",
            )?;
            append(writer.as_mut(), start, total - start)?;
            writer.finish()?;
            store.forget_upload_state(file);
            Ok(())
        })
        .await
    }

    /// Whether anything of `file` is left: a file under the disk store's root, or an
    /// object, piece or multipart upload in the bucket.
    async fn holds_anything_of(&self, file: Uuid) -> Result<bool> {
        match &self.bucket {
            Some(bucket) => bucket.holds_anything_of(file).await,
            None => Ok(files_under(self.dir.path().to_path_buf())?
                .iter()
                .any(|path| path.to_string_lossy().contains(&file.simple().to_string()))),
        }
    }
}

fn files_under(dir: PathBuf) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut todo = vec![dir];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// Stored bytes `start..start + len` of the object every scenario writes: different at
/// every offset of interest.
fn pattern(start: u64, len: u64) -> Vec<u8> {
    (start..start + len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Where a writer resumes: `stored_offset` and the state committed with it.
fn from(stored_offset: u64, state: &StoreState) -> WriteFrom<'_> {
    WriteFrom {
        stored_offset,
        max_plaintext_len: MAX_PLAINTEXT_LEN,
        state: state.as_deref(),
    }
}

/// Appends the pattern's bytes `start..start + len`.
fn append(writer: &mut dyn ObjectWriter, start: u64, len: u64) -> Result<(), StoreError> {
    writer.append(&pattern(start, len))
}

/// What was lost in a crash: bytes appended after the last commit, never synced.
fn append_lost(writer: &mut dyn ObjectWriter, len: u64) -> Result<(), StoreError> {
    writer.append(&vec![0xee; len as usize])
}

/// Reads `range` of `file` back.
async fn read(subject: &Subject, file: Uuid, start: u64, len: u64) -> Result<Vec<u8>> {
    subject
        .run(move |store| {
            let mut reader = store.open_reader(file, start..start + len)?;
            let mut buf = vec![0; len as usize];
            reader.read_exact_at(start, &mut buf)?;
            Ok(buf)
        })
        .await
}

/// The object reads back as `total` bytes of the pattern: whole, in ranges across `seams`
/// (each range straddles one), and `Truncated` one byte past the end.
async fn reads_back(subject: &Subject, file: Uuid, total: u64, seams: &[u64]) -> Result<()> {
    ensure!(
        read(subject, file, 0, total).await? == pattern(0, total),
        "whole object differs"
    );
    for &seam in seams {
        let start = seam.saturating_sub(1000);
        let len = (seam + 1000).min(total) - start;
        ensure!(
            read(subject, file, start, len).await? == pattern(start, len),
            "range {start}+{len} across {seam} differs"
        );
    }
    let past_end = read(subject, file, total - 10, 11).await;
    ensure!(
        past_end
            .as_ref()
            .is_err_and(|e| matches!(e.downcast_ref(), Some(StoreError::Truncated))),
        "a read past the end gave {past_end:?}"
    );
    Ok(())
}

/// A commit, bytes a crash loses, and a writer resumed from the commit: the object holds the
/// committed bytes and the new ones, nothing of the lost ones, and reads across the seam.
async fn a_resumed_writer_continues_exactly_at_the_commit(subject: Subject) -> Result<()> {
    let file = Uuid::new_v4();
    let (first, total) = (3 * SEGMENT, 7 * SEGMENT + 1234);
    let state = subject
        .commit_then_crash(file, (0, None), first, 2 * SEGMENT)
        .await?;
    subject.finish(file, (first, state), total).await?;
    reads_back(&subject, file, total, &[first, first + 2 * SEGMENT]).await
}

/// A long write commits at the store's rhythm (`checkpoint_every`) through a syncer while
/// appends go on; a crash after that commit resumes from it exactly, and the state a later
/// idle commit (`sync`) records resumes exactly too.
async fn a_checkpoint_at_the_stores_rhythm_resumes_exactly(subject: Subject) -> Result<()> {
    let file = Uuid::new_v4();
    let (boundary, state) = subject
        .run(move |store| {
            let mut writer = store.open_writer(file, from(0, &None))?;
            let boundary = writer.checkpoint_every() * SEGMENT;
            append(writer.as_mut(), 0, boundary)?;
            let syncer = writer.syncer()?;
            // Appends go on while the checkpoint syncs; a crash loses them.
            append_lost(writer.as_mut(), 3 * SEGMENT)?;
            let state = syncer.sync()?;
            writer.quiesce();
            Ok((boundary, state))
        })
        .await?;
    let (idle_commit, total) = (boundary + 2 * SEGMENT, boundary + 5 * SEGMENT + 77);
    let state = subject
        .commit_then_crash(file, (boundary, state), idle_commit, SEGMENT)
        .await?;
    subject.finish(file, (idle_commit, state), total).await?;
    reads_back(&subject, file, total, &[boundary, idle_commit]).await
}

/// The database failed to record a completion the store made: the client's retry resumes
/// from the last commit before it. A store that cannot take the object apart again says so
/// (`completed_len`) and finishes without writing; any other takes the bytes again. Either
/// way the object is the same afterwards.
async fn a_retried_completion_keeps_the_object(subject: Subject) -> Result<()> {
    let file = Uuid::new_v4();
    let (committed, total) = (2 * SEGMENT, 4 * SEGMENT + 999);
    let state = subject
        .run(move |store| {
            let mut writer = store.open_writer(file, from(0, &None))?;
            append(writer.as_mut(), 0, committed)?;
            let state = writer.sync()?;
            append(writer.as_mut(), committed, total - committed)?;
            writer.finish()?;
            Ok(state)
        })
        .await?;
    let completed_len = subject
        .run(move |store| {
            let mut writer = store.open_writer(file, from(committed, &state))?;
            let completed_len = writer.completed_len();
            if completed_len.is_none() {
                append(writer.as_mut(), committed, total - committed)?;
            }
            writer.finish()?;
            store.forget_upload_state(file);
            Ok(completed_len)
        })
        .await?;
    ensure!(
        completed_len.is_none_or(|len| len == total),
        "completed_len {completed_len:?}, object of {total}"
    );
    reads_back(&subject, file, total, &[committed]).await
}

/// Deleting a finished object and an unfinished one (with committed state and lost bytes)
/// leaves nothing of either; a deleted or never-written object is `NotFound`; deleting again
/// succeeds.
async fn deleting_leaves_nothing_behind(subject: Subject) -> Result<()> {
    let (finished, unfinished) = (Uuid::new_v4(), Uuid::new_v4());
    subject.finish(finished, (0, None), SEGMENT + 5).await?;
    subject
        .commit_then_crash(unfinished, (0, None), 2 * SEGMENT, 100)
        .await?;
    ensure!(subject.holds_anything_of(finished).await?);
    ensure!(subject.holds_anything_of(unfinished).await?);
    for file in [finished, unfinished, finished, Uuid::new_v4()] {
        subject.run(move |store| store.delete(file)).await?;
        ensure!(
            !subject.holds_anything_of(file).await?,
            "{file} left something"
        );
        let gone = read(&subject, file, 0, 1).await;
        ensure!(
            gone.as_ref()
                .is_err_and(|e| matches!(e.downcast_ref(), Some(StoreError::NotFound))),
            "reading deleted {file} gave {gone:?}"
        );
    }
    Ok(())
}

/// A broken expectation inside a blocking step, as a store error the step can return.
fn ensure_store(condition: bool, what: &str) -> Result<(), StoreError> {
    if condition {
        Ok(())
    } else {
        Err(StoreError::State(what.to_owned()))
    }
}
