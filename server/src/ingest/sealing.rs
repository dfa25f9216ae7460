//! The upload pipeline's CPU and I/O half: plaintext in, BLAKE3 tree state and sealed
//! segments out, appended to the object. Runs on blocking threads, one batch at a time.
//!
//! Invariant: the object holds exactly the `segments` full segments the hash state covers;
//! the partial segment (< 64 KiB) stays in memory as `tail` until it fills, and is saved
//! sealed in the database at each commit, so the acknowledged offset is exact.

use super::error::IngestError;
use crate::crypto::CryptoError;
use crate::crypto::segment::{
    SEGMENT_OVERHEAD, SEGMENT_PLAINTEXT, STORED_SEGMENT_MAX, SegmentCipher,
};
use crate::hash::TreeHasher;
use crate::store::{ObjectReader, ObjectStore, ObjectSyncer, ObjectWriter, StoreState, WriteFrom};
use uuid::Uuid;

/// What a commit writes to the database.
pub struct Snapshot {
    /// Plaintext bytes covered.
    pub offset: u64,
    /// Encoded hash state.
    pub hash_state: Vec<u8>,
    /// The sealed partial segment, if there is one.
    pub sealed_tail: Option<Vec<u8>>,
    /// The store's state for the stored segments (filled in once they are durable).
    pub store_state: StoreState,
}

/// A checkpoint that became available for free (an S3 part boundary): its snapshot, and the
/// syncer that makes it durable.
pub type FreeCheckpoint = (Snapshot, Box<dyn ObjectSyncer>);

/// Where an upload resumes: its committed state.
pub struct Resume<'a> {
    /// Encoded hash state.
    pub hash_state: &'a [u8],
    /// The sealed partial segment, if any.
    pub sealed_tail: Option<&'a [u8]>,
    /// The store's state, if any.
    pub store_state: Option<&'a [u8]>,
    /// The largest plaintext length the upload may reach.
    pub max_plaintext_len: u64,
}

/// One upload's pipeline state between batches.
pub struct Ingest {
    cipher: SegmentCipher,
    hasher: TreeHasher,
    tail: Vec<u8>,
    sealed: Vec<u8>,
    writer: Box<dyn ObjectWriter>,
    /// Segments between free checkpoints, if the store has them.
    free_every: Option<u64>,
    /// The latest free checkpoint not yet taken by the committer.
    free: Option<FreeCheckpoint>,
    /// Set when the store already holds the whole object: the bytes sent again are checked
    /// against it instead of being stored a second time.
    stored: Option<StoredObject>,
}

/// An object an earlier attempt completed in the store but whose completion the database
/// never recorded (the commit failed after the store's). The client sends the rest again from
/// the committed offset; each segment is compared, by plaintext, with the one stored (nonces
/// are random, so ciphertexts never match), and the hash grows from the client's bytes as
/// usual — so the recorded BLAKE3 is that of the stored object.
struct StoredObject {
    reader: Box<dyn ObjectReader>,
    /// Stored bytes of the object.
    len: u64,
    buf: Vec<u8>,
}

impl StoredObject {
    /// Checks that segment `index` of the stored object is `plaintext` (and is the last
    /// segment exactly when `last`).
    fn check(
        &mut self,
        cipher: &SegmentCipher,
        index: u64,
        last: bool,
        plaintext: &[u8],
    ) -> Result<(), IngestError> {
        let differs = IngestError::Resent {
            offset: index * SEGMENT_PLAINTEXT as u64,
        };
        let start = index * STORED_SEGMENT_MAX as u64;
        let end = start + (plaintext.len() + SEGMENT_OVERHEAD) as u64;
        if end > self.len || (last && end != self.len) {
            return Err(differs);
        }
        self.buf.resize(plaintext.len() + SEGMENT_OVERHEAD, 0);
        self.reader.read_exact_at(start, &mut self.buf)?;
        match cipher.open_in_place(index, last, &mut self.buf) {
            Ok(stored) if *stored == *plaintext => Ok(()),
            Ok(_) | Err(CryptoError::Authentication) => Err(differs),
            Err(e) => Err(e.into()),
        }
    }
}

impl Ingest {
    /// Resumes an upload from its committed state: hash state, and the sealed tail if any.
    pub fn resume(
        store: &dyn ObjectStore,
        file_id: Uuid,
        cipher: SegmentCipher,
        from: &Resume<'_>,
    ) -> Result<Self, IngestError> {
        let hasher = TreeHasher::from_bytes(from.hash_state)?;
        let mut tail = Vec::with_capacity(SEGMENT_PLAINTEXT);
        if let Some(sealed) = from.sealed_tail {
            tail.extend_from_slice(&cipher.open_tail(hasher.segments(), sealed)?);
        }
        let stored_offset = hasher.segments() * STORED_SEGMENT_MAX as u64;
        let writer = store.open_writer(
            file_id,
            WriteFrom {
                stored_offset,
                max_plaintext_len: from.max_plaintext_len,
                state: from.store_state,
            },
        )?;
        let stored = match writer.completed_len() {
            Some(len) => Some(StoredObject {
                reader: store.open_reader(file_id, stored_offset..len)?,
                len,
                buf: Vec::new(),
            }),
            None => None,
        };
        Ok(Ingest {
            cipher,
            hasher,
            tail,
            sealed: Vec::new(),
            free_every: writer.free_checkpoint_every(),
            writer,
            free: None,
            stored,
        })
    }

    /// Takes the latest free checkpoint reached, if any.
    pub fn take_free_checkpoint(&mut self) -> Option<FreeCheckpoint> {
        self.free.take()
    }

    /// Whether the store offers free checkpoints (then byte-count checkpoints are not used).
    pub fn has_free_checkpoints(&self) -> bool {
        self.free_every.is_some()
    }

    /// Plaintext bytes absorbed so far (committed or not).
    pub fn offset(&self) -> u64 {
        self.hasher.segments() * SEGMENT_PLAINTEXT as u64 + self.tail.len() as u64
    }

    /// Hashes, seals and appends every full segment `data` completes; keeps the rest as tail.
    pub fn absorb(&mut self, mut data: &[u8]) -> Result<(), IngestError> {
        if !self.tail.is_empty() {
            let take = (SEGMENT_PLAINTEXT - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() == SEGMENT_PLAINTEXT {
                let segment = std::mem::take(&mut self.tail);
                self.seal_full(&segment)?;
                self.tail = segment;
                self.tail.clear();
            }
        }
        while data.len() >= SEGMENT_PLAINTEXT {
            let (segment, rest) = data.split_at(SEGMENT_PLAINTEXT);
            self.seal_full(segment)?;
            data = rest;
        }
        self.tail.extend_from_slice(data);
        if !self.sealed.is_empty() {
            self.writer.append(&self.sealed)?;
            self.sealed.clear();
        }
        Ok(())
    }

    /// Waits for the store writer's background work (see [`ObjectWriter::quiesce`]).
    pub fn quiesce(&mut self) {
        self.writer.quiesce();
    }

    /// Frees the sealed-output buffer, which grows to a whole batch's size: after a short
    /// batch (a slow client) the next one is likely short too.
    pub fn release_buffers(&mut self) {
        self.sealed = Vec::new();
    }

    /// Seals a full segment; at a free checkpoint (the tail is empty there: the segment
    /// came from the data or from a completed tail) hands the sealed bytes to the store and
    /// notes the checkpoint.
    fn seal_full(&mut self, segment: &[u8]) -> Result<(), IngestError> {
        let index = self.hasher.segments();
        if let Some(stored) = self.stored.as_mut() {
            stored.check(&self.cipher, index, false, segment)?;
            self.hasher.push_segment(segment)?;
            return Ok(());
        }
        self.hasher.push_segment(segment)?;
        self.cipher
            .seal_into(index, false, segment, &mut self.sealed)?;
        if self
            .free_every
            .is_some_and(|k| self.hasher.segments().is_multiple_of(k))
        {
            self.writer.append(&self.sealed)?;
            self.sealed.clear();
            let syncer = self.writer.syncer()?;
            self.free = Some((self.snapshot_of_segments()?, syncer));
        }
        Ok(())
    }

    /// Makes the appended segments durable and describes the state to commit.
    pub fn checkpoint(&mut self) -> Result<Snapshot, IngestError> {
        let store_state = self.writer.sync()?;
        // Anything noted before is older than this.
        self.free = None;
        Ok(Snapshot {
            store_state,
            ..self.snapshot()?
        })
    }

    /// Describes the state to commit once `syncer` (taken now) has made it durable; appends
    /// may go on meanwhile.
    pub fn snapshot_for_sync(&mut self) -> Result<FreeCheckpoint, IngestError> {
        Ok((self.snapshot()?, self.writer.syncer()?))
    }

    /// The state covering exactly the full segments sealed so far (no tail).
    fn snapshot_of_segments(&self) -> Result<Snapshot, IngestError> {
        Ok(Snapshot {
            offset: self.hasher.segments() * SEGMENT_PLAINTEXT as u64,
            hash_state: self.hasher.to_bytes(),
            sealed_tail: None,
            store_state: None,
        })
    }

    fn snapshot(&self) -> Result<Snapshot, IngestError> {
        let sealed_tail = if self.tail.is_empty() {
            None
        } else {
            Some(self.cipher.seal_tail(self.hasher.segments(), &self.tail)?)
        };
        Ok(Snapshot {
            offset: self.offset(),
            hash_state: self.hasher.to_bytes(),
            sealed_tail,
            store_state: None,
        })
    }

    /// Seals the tail as the final segment, ends the object durably, and returns the file's
    /// BLAKE3 hash.
    pub fn finish(&mut self) -> Result<blake3::Hash, IngestError> {
        let index = self.hasher.segments();
        if let Some(stored) = self.stored.as_mut() {
            stored.check(&self.cipher, index, true, &self.tail)?;
        } else {
            self.cipher
                .seal_into(index, true, &self.tail, &mut self.sealed)?;
            self.writer.append(&self.sealed)?;
            self.sealed.clear();
        }
        self.writer.finish()?;
        Ok(self.hasher.finalize(&self.tail)?)
    }
}
