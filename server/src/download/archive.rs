//! "Download all": a share's files as one ZIP (layout in [`super::zip`]), served like one file
//! — a length, an `ETag`, byte ranges — and counted like the single files: each response
//! reserves, per file, the bytes of that file its range covers (an empty file: one unit when
//! the range starts its entry), gives back what it did not send, and records one download per
//! file it touched. Header bytes cost nothing.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::zip::{Span, ZipEntry, ZipLayout};
use super::{
    DownloadError, MeteredChunks, Visitor, download_cost, open_file, record, refund_bytes,
    reserve_bytes, share_files,
};
use crate::audit::EventKind;
use crate::db::shares::{ShareRow, SharedFile};
use crate::hash::crc32_extend;
use crate::state::AppState;
use crate::telemetry;

/// A share's archive, laid out and ready to serve.
pub struct Archive {
    /// Where every byte of the archive comes from.
    pub layout: ZipLayout,
    /// Its strong validator: the same files give the same archive, so the same tag, and a
    /// resumed download (`If-Range`) gets the rest of the same bytes.
    pub etag: String,
    files: HashMap<Uuid, SharedFile>,
}

/// A run of the response body, owned (the streaming task outlives the request).
enum Part {
    Bytes(Bytes),
    File { id: Uuid, start: u64, end: u64 },
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Bytes(bytes) => bytes.len() as u64,
            Part::File { start, end, .. } => end - start + 1,
        }
    }
}

/// Lays out the archive of `share`'s files (in the share's order). A file completed before
/// CRC-32 was kept gets it computed here, once, from its bytes, and recorded.
pub async fn open_archive(state: &AppState, share: &ShareRow) -> Result<Archive, DownloadError> {
    let files = share_files(state, share).await?;
    let mut entries = Vec::with_capacity(files.len());
    for file in &files {
        let crc32 = match file.crc32 {
            Some(crc) => crc,
            None => crc_from_bytes(state, share, file).await?,
        };
        entries.push(ZipEntry {
            file: file.id,
            name: file.name.clone(),
            size: file.size,
            crc32,
            modified: file.completed_at,
        });
    }
    let layout = ZipLayout::new(&entries);
    let etag = format!("\"zip-{}\"", &layout.fingerprint().to_hex()[..32]);
    Ok(Archive {
        layout,
        etag,
        files: files.into_iter().map(|f| (f.id, f)).collect(),
    })
}

/// Reads a file once to compute the CRC-32 its upload did not keep, and records it.
async fn crc_from_bytes(
    state: &AppState,
    share: &ShareRow,
    file: &SharedFile,
) -> Result<u32, DownloadError> {
    let mut crc = 0;
    if file.size > 0 {
        let open = open_file(state, share, file.id).await?;
        let mut chunks = super::reader::stream_range(state, open, 0, file.size - 1).await?;
        while let Some(batch) = chunks.recv().await {
            for chunk in batch.map_err(|e| DownloadError::Task(e.to_string()))? {
                crc = crc32_extend(crc, &chunk);
            }
        }
    }
    state.db.record_crc32(share.tenant_id, file.id, crc).await?;
    tracing::info!(file = %file.id, "CRC-32 computed for a file uploaded before it was kept");
    Ok(crc)
}

/// Serves bytes `start..=end` of `archive`: reserves what each file's part costs before a
/// byte leaves (`LimitReached` if any file's budget cannot cover it, with nothing reserved),
/// then streams headers and files in order; when the stream ends, each file gets back what
/// it did not send and its download is recorded.
pub async fn begin_archive_download(
    state: &AppState,
    share: ShareRow,
    archive: Archive,
    (start, end): (u64, u64),
    visitor: Visitor,
) -> Result<MeteredChunks, DownloadError> {
    let parts: Vec<Part> = archive
        .layout
        .spans(start, end)
        .into_iter()
        .map(|span| match span {
            Span::Bytes(bytes) => Part::Bytes(Bytes::copy_from_slice(bytes)),
            Span::File { id, start, end } => Part::File { id, start, end },
        })
        .collect();
    let empty = archive.layout.empty_files_in(start, end);
    reserve_parts(state, &share, &archive.files, &parts, &empty).await?;
    for id in &empty {
        let details = serde_json::json!({
            "range": "", "bytes_sent": 0, "complete": true, "archive": true,
        });
        record(state, &share, EventKind::Download, *id, &visitor, details).await?;
    }
    telemetry::download_started();
    let lengths: Vec<(Option<Uuid>, u64)> = parts
        .iter()
        .map(|part| match part {
            Part::Bytes(_) => (None, part.len()),
            Part::File { id, .. } => (Some(*id), part.len()),
        })
        .collect();
    let ranges: Vec<(Uuid, u64, u64)> = parts
        .iter()
        .filter_map(|part| match part {
            Part::File { id, start, end } => Some((*id, *start, *end)),
            Part::Bytes(_) => None,
        })
        .collect();
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(stream_parts(state.clone(), share.clone(), parts, tx));
    let on_end = record_archive_download(state.clone(), share, visitor, lengths, ranges);
    Ok(MeteredChunks::new(rx, Box::new(on_end)))
}

/// Reserves every file's part; on the first refusal gives back what was already reserved.
async fn reserve_parts(
    state: &AppState,
    share: &ShareRow,
    files: &HashMap<Uuid, SharedFile>,
    parts: &[Part],
    empty: &[Uuid],
) -> Result<(), DownloadError> {
    let wanted = parts
        .iter()
        .filter_map(|part| match part {
            Part::File { id, start, end } => Some((*id, Some((*start, *end)))),
            Part::Bytes(_) => None,
        })
        .chain(empty.iter().map(|id| (*id, None)));
    let mut reserved: Vec<(Uuid, u64)> = Vec::new();
    for (id, range) in wanted {
        let outcome = match files.get(&id) {
            Some(file) => reserve_bytes(state, share, file, range)
                .await
                .map(|_| download_cost(file.size, range).cost),
            None => Err(DownloadError::NotFound),
        };
        match outcome {
            Ok(cost) => reserved.push((id, cost)),
            Err(e) => {
                for (id, cost) in reserved {
                    if let Err(undo) = refund_bytes(state, share, id, cost).await {
                        tracing::warn!(file = %id, error = %undo, "reservation not given back");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Sends the parts in order: header bytes as they are, each file's range read and verified
/// as for a single download. Stops at the first failure (the body is cut off: the client
/// sees an incomplete transfer, never wrong bytes) or when the recipient goes away.
async fn stream_parts(
    state: AppState,
    share: ShareRow,
    parts: Vec<Part>,
    tx: mpsc::Sender<Result<Vec<Bytes>, std::io::Error>>,
) {
    for part in parts {
        match part {
            Part::Bytes(bytes) => {
                if tx.send(Ok(vec![bytes])).await.is_err() {
                    return;
                }
            }
            Part::File { id, start, end } => {
                let opened = match open_file(&state, &share, id).await {
                    Ok(open) => super::reader::stream_range(&state, open, start, end).await,
                    Err(e) => Err(e),
                };
                let mut chunks = match opened {
                    Ok(chunks) => chunks,
                    Err(e) => {
                        tracing::error!(file = %id, error = %e, "archive download aborted");
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                while let Some(chunk) = chunks.recv().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
            }
        }
    }
}

/// When the response ends having handed out `sent` bytes: since parts go out in order, the
/// first `sent` bytes say how much of each file left. Gives back the rest of each file's
/// reservation and records one download per file.
fn record_archive_download(
    state: AppState,
    share: ShareRow,
    visitor: Visitor,
    lengths: Vec<(Option<Uuid>, u64)>,
    ranges: Vec<(Uuid, u64, u64)>,
) -> impl FnOnce(u64) + Send {
    move |sent| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(share = %share.id, "archive download not recorded: no runtime");
            return;
        };
        telemetry::download_bytes_served(sent);
        let mut left = sent;
        let mut sent_of: HashMap<Uuid, u64> = HashMap::new();
        for (file, len) in lengths {
            let took = left.min(len);
            left -= took;
            if let Some(id) = file {
                *sent_of.entry(id).or_default() += took;
            }
        }
        runtime.spawn(async move {
            for (file, start, end) in ranges {
                let length = end - start + 1;
                let sent = sent_of.get(&file).copied().unwrap_or(0);
                if let Err(e) = refund_bytes(&state, &share, file, length - sent.min(length)).await
                {
                    tracing::warn!(file = %file, error = %e, "unsent archive bytes not given back");
                }
                let details = serde_json::json!({
                    "range": format!("{start}-{end}"),
                    "bytes_sent": sent,
                    "complete": sent == length,
                    "archive": true,
                });
                let recorded =
                    record(&state, &share, EventKind::Download, file, &visitor, details).await;
                if let Err(e) = recorded {
                    tracing::error!(file = %file, error = %e, "download not recorded in the audit log");
                }
            }
        });
    }
}
