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
use crate::db::uploads::Checkpoint;
use crate::hash::{FileDigests, UploadDigest};
use crate::store::{ObjectReader, ObjectStore, ObjectSyncer, ObjectWriter, WriteFrom};
use uuid::Uuid;

/// A checkpoint reached at one of the store's boundaries (see
/// [`ObjectWriter::checkpoint_every`]): what to commit, and the syncer that makes its bytes
/// durable first. The pipeline goes on appending while it syncs.
pub struct PendingCheckpoint {
    /// What the commit records; its `store_state` is filled in by the sync.
    pub checkpoint: Checkpoint,
    /// Makes every byte the checkpoint covers durable.
    pub syncer: Box<dyn ObjectSyncer>,
}

/// One upload's pipeline state between batches.
pub struct Ingest {
    cipher: SegmentCipher,
    digest: UploadDigest,
    tail: Vec<u8>,
    sealed: SealedBuffer,
    writer: Box<dyn ObjectWriter>,
    /// Segments between checkpoints, as the store wants them.
    checkpoint_every: u64,
    /// The latest checkpoint reached and not yet taken by the committer.
    pending: Option<PendingCheckpoint>,
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
    /// Resumes an upload from its committed state, to grow up to `max_plaintext_len`.
    pub fn resume(
        store: &dyn ObjectStore,
        file_id: Uuid,
        cipher: SegmentCipher,
        from: &Checkpoint,
        max_plaintext_len: u64,
    ) -> Result<Self, IngestError> {
        let digest = UploadDigest::from_bytes(&from.hash_state)?;
        let mut tail = Vec::with_capacity(SEGMENT_PLAINTEXT);
        if let Some(sealed) = &from.sealed_tail {
            tail.extend_from_slice(&cipher.open_tail(digest.segments(), sealed)?);
        }
        let stored_offset = digest.segments() * STORED_SEGMENT_MAX as u64;
        let writer = store.open_writer(
            file_id,
            WriteFrom {
                stored_offset,
                max_plaintext_len,
                state: from.store_state.as_deref(),
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
            digest,
            tail,
            sealed: SealedBuffer::default(),
            checkpoint_every: writer.checkpoint_every().max(1),
            writer,
            pending: None,
            stored,
        })
    }

    /// Takes the latest checkpoint reached, if any.
    pub fn take_checkpoint(&mut self) -> Option<PendingCheckpoint> {
        self.pending.take()
    }

    /// Plaintext bytes absorbed so far (committed or not).
    pub fn offset(&self) -> u64 {
        self.digest.segments() * SEGMENT_PLAINTEXT as u64 + self.tail.len() as u64
    }

    /// Hashes, seals and appends every full segment the pieces complete, in one write to the
    /// store; keeps the rest as tail. A segment is read in place from its piece; only one that
    /// spans two pieces is gathered in the tail first.
    pub fn absorb(&mut self, pieces: &[impl AsRef<[u8]>]) -> Result<(), IngestError> {
        for piece in pieces {
            self.absorb_piece(piece.as_ref())?;
        }
        self.flush_sealed()
    }

    fn absorb_piece(&mut self, mut data: &[u8]) -> Result<(), IngestError> {
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
        Ok(())
    }

    /// Hands the segments sealed so far to the store, in one write.
    fn flush_sealed(&mut self) -> Result<(), IngestError> {
        if !self.sealed.is_empty() {
            self.writer.append(self.sealed.filled())?;
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
        self.sealed = SealedBuffer::default();
    }

    /// Seals a full segment (or, for an object already stored, checks it); at a
    /// checkpoint boundary (the tail is empty there: the segment came from the data or from
    /// a completed tail) hands the sealed bytes to the store and notes the checkpoint.
    fn seal_full(&mut self, segment: &[u8]) -> Result<(), IngestError> {
        let index = self.digest.segments();
        if let Some(stored) = self.stored.as_mut() {
            stored.check(&self.cipher, index, false, segment)?;
        } else {
            let cipher = &self.cipher;
            self.sealed
                .append(segment.len() + SEGMENT_OVERHEAD, |slot| {
                    cipher.seal_to(index, false, segment, slot)
                })?;
        }
        self.digest.push_segment(segment)?;
        if self.digest.segments().is_multiple_of(self.checkpoint_every) {
            self.flush_sealed()?;
            self.pending = Some(PendingCheckpoint {
                checkpoint: self.state()?,
                syncer: self.writer.syncer()?,
            });
        }
        Ok(())
    }

    /// Makes the appended segments durable and returns the state to commit.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, IngestError> {
        let store_state = self.writer.sync()?;
        // Anything noted before is older than this.
        self.pending = None;
        Ok(Checkpoint {
            store_state,
            ..self.state()?
        })
    }

    /// The state covering everything absorbed so far (the tail sealed on its own); the
    /// store's state is left for the sync to fill in.
    fn state(&self) -> Result<Checkpoint, IngestError> {
        let sealed_tail = if self.tail.is_empty() {
            None
        } else {
            Some(self.cipher.seal_tail(self.digest.segments(), &self.tail)?)
        };
        Ok(Checkpoint {
            offset: self.offset(),
            hash_state: self.digest.to_bytes(),
            sealed_tail,
            store_state: None,
        })
    }

    /// Seals the tail as the final segment, ends the object durably, and returns the file's
    /// digests (BLAKE3 and CRC-32).
    pub fn finish(&mut self) -> Result<FileDigests, IngestError> {
        let index = self.digest.segments();
        if let Some(stored) = self.stored.as_mut() {
            stored.check(&self.cipher, index, true, &self.tail)?;
        } else {
            let (cipher, tail) = (&self.cipher, &self.tail);
            self.sealed.append(tail.len() + SEGMENT_OVERHEAD, |slot| {
                cipher.seal_to(index, true, tail, slot)
            })?;
            self.flush_sealed()?;
        }
        self.writer.finish()?;
        Ok(self.digest.finalize(&self.tail)?)
    }
}

/// Sealed segments waiting for one write to the store. The buffer is only ever grown and
/// its bytes overwritten, so sealing a segment neither allocates nor zeroes memory.
#[derive(Default)]
struct SealedBuffer {
    buf: Vec<u8>,
    len: usize,
}

impl SealedBuffer {
    /// Appends `n` bytes that `write` fills whole; they are kept only if it succeeds.
    fn append<E>(
        &mut self,
        n: usize,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let end = self.len + n;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        write(&mut self.buf[self.len..end])?;
        self.len = end;
        Ok(())
    }

    fn filled(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::segment::Dek;
    use crate::store::CHECKPOINT_SEGMENTS;
    use crate::store::disk::DiskStore;

    /// Absorbs `data` in uneven pieces; returns the offsets of the checkpoints reached and
    /// the first of them.
    fn absorb_all(ingest: &mut Ingest, data: &[u8]) -> (Vec<u64>, Option<PendingCheckpoint>) {
        let (mut offsets, mut first) = (Vec::new(), None);
        for piece in data.chunks((3 << 20) + 7) {
            ingest.absorb(&[piece]).expect("absorb");
            if let Some(pending) = ingest.take_checkpoint() {
                offsets.push(pending.checkpoint.offset);
                first.get_or_insert(pending);
            }
        }
        (offsets, first)
    }

    #[test]
    fn the_store_sets_the_checkpoints_and_each_one_resumes_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStore::open(dir.path()).expect("store");
        let (id, dek) = (Uuid::new_v4(), Dek::generate().expect("dek"));
        let cipher = || SegmentCipher::new(&dek, id).expect("cipher");
        let every = CHECKPOINT_SEGMENTS * SEGMENT_PLAINTEXT as u64;
        let len = 2 * every + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let start = Checkpoint {
            offset: 0,
            hash_state: UploadDigest::new().to_bytes(),
            sealed_tail: None,
            store_state: None,
        };

        let mut first_try = Ingest::resume(&store, id, cipher(), &start, len).expect("resume");
        let (offsets, first) = absorb_all(&mut first_try, &data);
        assert_eq!(offsets, vec![every, 2 * every]);
        drop(first_try);

        // A crash after the first checkpoint's commit: the next write resumes from it alone.
        let PendingCheckpoint {
            mut checkpoint,
            syncer,
        } = first.expect("a checkpoint");
        checkpoint.store_state = syncer.sync().expect("sync");
        assert_eq!(checkpoint.sealed_tail, None);
        let mut resumed = Ingest::resume(&store, id, cipher(), &checkpoint, len).expect("resume");
        let (offsets, _) = absorb_all(&mut resumed, &data[every as usize..]);
        assert_eq!(offsets, vec![2 * every]);
        let digests = resumed.finish().expect("finish");
        assert_eq!(digests.blake3, blake3::hash(&data));
        assert_eq!(digests.crc32, Some(crc32fast::hash(&data)));
    }

    #[test]
    fn frames_of_any_size_give_the_object_and_digests_of_the_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStore::open(dir.path()).expect("store");
        let (id, dek) = (Uuid::new_v4(), Dek::generate().expect("dek"));
        let cipher = SegmentCipher::new(&dek, id).expect("cipher");
        let len = 5 * SEGMENT_PLAINTEXT + 999;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
        // Frames as an HTTP reader hands them out: tiny, exactly a segment, spanning two or
        // three segments, cut one byte either side of a boundary.
        let sizes = [1, 65_535, 65_536, 2, 200_000, 65_537, 10];
        let mut frames = Vec::new();
        let mut rest = &data[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (frame, tail) = rest.split_at((*size).min(rest.len()));
            frames.push(bytes::Bytes::copy_from_slice(frame));
            rest = tail;
        }
        let start = Checkpoint {
            offset: 0,
            hash_state: UploadDigest::new().to_bytes(),
            sealed_tail: None,
            store_state: None,
        };
        let mut ingest = Ingest::resume(&store, id, cipher, &start, len as u64).expect("resume");
        ingest.absorb(&frames[..3]).expect("absorb");
        ingest.absorb(&frames[3..]).expect("absorb");
        assert_eq!(ingest.offset(), len as u64);
        let digests = ingest.finish().expect("finish");
        assert_eq!(digests.blake3, blake3::hash(&data));
        assert_eq!(digests.crc32, Some(crc32fast::hash(&data)));

        // The object opens, segment by segment, to the data.
        let cipher = SegmentCipher::new(&dek, id).expect("cipher");
        let mut reader = store
            .open_reader(id, 0..crate::crypto::segment::stored_len(len as u64))
            .expect("reader");
        let mut plain = Vec::new();
        for index in 0..crate::crypto::segment::segment_count(len as u64) {
            let (plain_len, last) = crate::crypto::segment::segment_plain_len(len as u64, index);
            let mut segment = vec![0u8; plain_len + SEGMENT_OVERHEAD];
            reader
                .read_exact_at(index * STORED_SEGMENT_MAX as u64, &mut segment)
                .expect("read");
            plain.extend_from_slice(
                cipher
                    .open_in_place(index, last, &mut segment)
                    .expect("open"),
            );
        }
        assert_eq!(plain, data);
    }
}
