//! `file://DIR`: one file per object, positional writes, fsync before acknowledging.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::{
    CHECKPOINT_SEGMENTS, ObjectReader, ObjectStore, ObjectSyncer, ObjectWriter, StoreError,
    StoreState, WriteFrom,
};

/// Objects under a directory, fanned out by the first two hex digits of the file id.
#[derive(Debug)]
pub struct DiskStore {
    root: PathBuf,
}

impl DiskStore {
    /// Uses (and creates) `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        fs::create_dir_all(root.as_ref())?;
        Ok(DiskStore {
            root: root.as_ref().to_owned(),
        })
    }

    fn path(&self, file: Uuid) -> PathBuf {
        let name = file.simple().to_string();
        self.root.join(&name[..2]).join(name)
    }
}

impl ObjectStore for DiskStore {
    fn open_writer(
        &self,
        file: Uuid,
        from: WriteFrom<'_>,
    ) -> Result<Box<dyn ObjectWriter>, StoreError> {
        let path = self.path(file);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        let new_dir = !dir.exists();
        fs::create_dir_all(&dir)?;
        if new_dir {
            // Likewise the fan-out directory's entry in the root.
            File::open(&self.root)?.sync_all()?;
        }
        let existed = path.exists();
        let handle = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        if !existed {
            // The new directory entry must survive a crash too, or a durable offset could
            // point into a file that vanished.
            File::open(&dir)?.sync_all()?;
        }
        Ok(Box::new(DiskWriter {
            file: handle,
            position: from.stored_offset,
        }))
    }

    fn open_reader(
        &self,
        file: Uuid,
        _expected: Range<u64>,
    ) -> Result<Box<dyn ObjectReader>, StoreError> {
        match File::open(self.path(file)) {
            Ok(handle) => Ok(Box::new(DiskReader { file: handle })),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, file: Uuid) -> Result<(), StoreError> {
        match fs::remove_file(self.path(file)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

struct DiskWriter {
    file: File,
    position: u64,
}

impl ObjectWriter for DiskWriter {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file.write_all_at(bytes, self.position)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<StoreState, StoreError> {
        self.file.sync_data()?;
        Ok(None)
    }

    fn syncer(&mut self) -> Result<Box<dyn ObjectSyncer>, StoreError> {
        Ok(Box::new(DiskSyncer {
            file: self.file.try_clone()?,
        }))
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        self.file.set_len(self.position)?;
        self.file.sync_all()?;
        Ok(())
    }

    fn checkpoint_every(&self) -> u64 {
        CHECKPOINT_SEGMENTS
    }
}

/// A second handle on the object's file: `fdatasync` on it covers every write made through
/// any handle before the call.
struct DiskSyncer {
    file: File,
}

impl ObjectSyncer for DiskSyncer {
    fn sync(self: Box<Self>) -> Result<StoreState, StoreError> {
        self.file.sync_data()?;
        Ok(None)
    }
}

struct DiskReader {
    file: File,
}

impl ObjectReader for DiskReader {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(StoreError::Truncated),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_resume_at_the_durable_position_and_finish_truncates() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("ferry-disk-{}", Uuid::new_v4()));
        let store = DiskStore::open(&dir)?;
        let id = Uuid::new_v4();

        let from = |stored_offset| WriteFrom {
            stored_offset,
            max_plaintext_len: 1 << 20,
            state: None,
        };
        let mut writer = store.open_writer(id, from(0))?;
        writer.append(b"hello world, and some bytes a crash left behind")?;
        writer.sync()?;
        drop(writer);

        // A resumed writer overwrites from the durable position; finish drops the rest.
        let mut writer = store.open_writer(id, from(5))?;
        writer.append(b", ferry")?;
        writer.finish()?;

        let mut reader = store.open_reader(id, 0..12)?;
        let mut buf = [0u8; 12];
        reader.read_exact_at(0, &mut buf)?;
        assert_eq!(&buf, b"hello, ferry");
        let mut past_end = [0u8; 13];
        assert!(matches!(
            reader.read_exact_at(0, &mut past_end),
            Err(StoreError::Truncated)
        ));

        store.delete(id)?;
        store.delete(id)?;
        assert!(matches!(
            store.open_reader(id, 0..1),
            Err(StoreError::NotFound)
        ));
        let _ = fs::remove_dir_all(dir);
        Ok(())
    }
}
