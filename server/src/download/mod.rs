//! Recipients' side as a domain: resolve a link token to its live share, open its page, and
//! serve a file's bytes. This module owns the counting rule: what reserves bytes against the
//! download limit, what gives them back, and what is recorded (a HEAD or the page never
//! counts; every GET of bytes is recorded when it ends, with the bytes it really sent).

use time::OffsetDateTime;
use uuid::Uuid;

mod archive;
mod error;
mod metered;
mod reader;
pub mod zip;

pub use archive::{Archive, begin_archive_download, open_archive};
pub use error::DownloadError;
pub use metered::MeteredChunks;
pub use reader::{OpenFile, open_file};

use crate::audit::{Actor, EventKind};
use crate::auth::parse_link_token;
use crate::branding::{self, Logo};
use crate::db::share_status::DownloadCost;
use crate::db::shares::{ShareRow, SharedFile};
use crate::db::{Db, DbError};
use crate::shares::ShareState;
use crate::state::AppState;
use crate::telemetry;

/// Finds the live share behind a link token — the share's own, or one of its recipients'
/// links — verifying the token in constant time. A recipient's link is dead when it or its
/// share is revoked.
pub async fn resolve_share(state: &AppState, token: &str) -> Result<ShareRow, DownloadError> {
    resolve_token(&state.db, token).await
}

/// The share behind a genuine token, whatever its state; `NotFound` for anything else.
async fn verified_share(db: &Db, token: &str) -> Result<ShareRow, DownloadError> {
    let presented = parse_link_token(token).ok_or(DownloadError::NotFound)?;
    let share = match db.share_by_selector(presented.selector).await {
        Err(DbError::NotFound) => db.share_by_link_selector(presented.selector).await?,
        other => other?,
    };
    if !presented.matches(&share.token_hash) {
        return Err(DownloadError::NotFound);
    }
    Ok(share)
}

/// Who a genuine token's link is from (the tenant's shown name and logo), even when the link no
/// longer works: its expired, withdrawn or used-up page is the tenant's page too. `None` for a
/// token that is not genuine, so an unknown link's page never says whose it could have been.
pub async fn sender_of_token(state: &AppState, token: &str) -> Option<(String, Option<Logo>)> {
    let share = verified_share(&state.db, token).await.ok()?;
    let (name, branding) = branding::of_tenant(&state.db, share.tenant_id).await.ok()?;
    Some((branding.display_name.unwrap_or(name), branding.logo))
}

/// [`resolve_share`] on a database alone: the relay resolves the links in a message with it.
pub async fn resolve_token(db: &Db, token: &str) -> Result<ShareRow, DownloadError> {
    let share = verified_share(db, token).await?;
    let now = OffsetDateTime::now_utc();
    match ShareState::at(now, share.revoked_at, share.ended_at, share.expires_at) {
        ShareState::Active => Ok(share),
        ShareState::Expired => Err(DownloadError::Gone { revoked: false }),
        ShareState::Revoked => Err(DownloadError::Gone { revoked: true }),
    }
}

/// Who is at the other end of a recipient's request, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    /// The client's address (the TCP peer).
    pub ip: Option<std::net::IpAddr>,
    /// Its `User-Agent`, cut to 512 characters.
    pub user_agent: Option<String>,
}

/// Records an event a recipient caused on `share` (a page opened, bytes served).
async fn record(
    state: &AppState,
    share: &ShareRow,
    kind: EventKind,
    subject: Uuid,
    visitor: &Visitor,
    mut details: serde_json::Value,
) -> Result<(), DownloadError> {
    if let Some(fields) = details.as_object_mut() {
        fields.insert("share".into(), serde_json::json!(share.id));
        if let Some(link) = &share.link {
            fields.insert("link".into(), serde_json::json!(link.id));
            fields.insert("recipient".into(), serde_json::json!(link.recipient));
        }
        fields.insert("ip".into(), serde_json::json!(visitor.ip));
        fields.insert("user_agent".into(), serde_json::json!(visitor.user_agent));
    }
    let entry = state
        .audit(
            share.tenant_id,
            kind,
            Actor::Recipient,
            Some(subject),
            details,
        )
        .map_err(DownloadError::Keys)?;
    state.db.append_audit(&entry).await?;
    Ok(())
}

/// Reserves the bytes `[start, end]` of `file` against the tenant's `max_downloads_per_file`,
/// before any of them leave; `LimitReached` when the budget cannot cover them.
///
/// The rule (DESIGN.md, "Download limit"): a file may be served N copies' worth of bytes
/// through one share, plus an allowance for bytes lost in flight that is always less than
/// one copy. Every response reserves the length of its range; a response that ends early
/// gives back what it did not send ([`refund_bytes`]). So N whole downloads succeed and the
/// next is refused, however they are split into ranges or resumed, and a HEAD (which sends
/// no body) costs nothing. An empty file costs one unit per download.
async fn reserve_bytes(
    state: &AppState,
    share: &ShareRow,
    file: &SharedFile,
    range: Option<(u64, u64)>,
) -> Result<u64, DownloadError> {
    let cost = download_cost(file.size, range);
    state
        .db
        .reserve_download(share.tenant_id, share.id, file.id, &cost)
        .await?
        .ok_or(DownloadError::LimitReached)
}

/// The cost of serving `range` (`None`: the whole of an empty file) of a `size`-byte file.
pub fn download_cost(size: u64, range: Option<(u64, u64)>) -> DownloadCost {
    let unit = size.max(1);
    DownloadCost {
        cost: range.map_or(1, |(start, end)| (end + 1).saturating_sub(start)),
        unit,
        allowance: (size / 64).max(IN_FLIGHT_ALLOWANCE).min(size / 2),
    }
}

/// Bytes a broken connection may have lost in socket buffers, allowed for beyond N copies;
/// never more than half a copy, so N + 1 copies are never served.
const IN_FLIGHT_ALLOWANCE: u64 = 16 << 20;

/// Gives back the bytes of a reservation that a response did not send.
async fn refund_bytes(
    state: &AppState,
    share: &ShareRow,
    file: Uuid,
    unsent: u64,
) -> Result<(), DownloadError> {
    if unsent > 0 {
        state.db.refund_download(share.id, file, unsent).await?;
    }
    Ok(())
}

/// The files a share offers.
async fn share_files(state: &AppState, share: &ShareRow) -> Result<Vec<SharedFile>, DownloadError> {
    Ok(state.db.shared_files(share.tenant_id, share.id).await?)
}

/// What the share page shows.
pub struct SharePage {
    /// The share (its note and expiry).
    pub share: ShareRow,
    /// Its files, in the share's order.
    pub files: Vec<SharedFile>,
    /// The name the tenant shows recipients (its display name, else its name).
    pub tenant_name: String,
    /// Its logo, if it set one.
    pub logo: Option<Logo>,
    /// The sender's address, when a person (not an API key) shared the files.
    pub sender: Option<String>,
}

/// The share page of `token`: the share, its files, who sent them. A GET records
/// `page.opened`; a HEAD (`record_visit` false: a mail scanner, a link checker) is not someone
/// opening the page. Neither counts as a download: mail scanners open links before people do.
pub async fn open_page(
    state: &AppState,
    token: &str,
    visitor: &Visitor,
    record_visit: bool,
) -> Result<SharePage, DownloadError> {
    let share = resolve_share(state, token).await?;
    let files = share_files(state, &share).await?;
    let (name, branding) = branding::of_tenant(&state.db, share.tenant_id).await?;
    let sender = state
        .db
        .share_sender_address(share.tenant_id, share.id)
        .await?;
    if record_visit {
        record(
            state,
            &share,
            EventKind::PageOpened,
            share.id,
            visitor,
            serde_json::json!({}),
        )
        .await?;
    }
    Ok(SharePage {
        share,
        files,
        tenant_name: branding.display_name.unwrap_or(name),
        logo: branding.logo,
        sender,
    })
}

/// Serves `[start, end]` of an opened file (`None`: the whole of an empty file): reserves the
/// range against the download limit before a byte leaves, and when the returned stream ends
/// (sent to the end or dropped) gives back what it did not send and records the download. An
/// empty file is recorded at once. A HEAD never comes here: it costs nothing.
pub async fn begin_download(
    state: &AppState,
    share: ShareRow,
    open: OpenFile,
    range: Option<(u64, u64)>,
    visitor: Visitor,
) -> Result<MeteredChunks, DownloadError> {
    let file_id = open.file.id;
    let Some((start, end)) = range else {
        reserve_bytes(state, &share, &open.file, None).await?;
        record(
            state,
            &share,
            EventKind::Download,
            file_id,
            &visitor,
            serde_json::json!({ "range": "", "bytes_sent": 0, "complete": true }),
        )
        .await?;
        return Ok(MeteredChunks::empty());
    };
    let file = open.file.clone();
    let chunks = reader::stream_range(state, open, start, end).await?;
    reserve_bytes(state, &share, &file, Some((start, end))).await?;
    telemetry::download_started();
    let on_end = record_download(state.clone(), share, file_id, visitor, (start, end));
    Ok(MeteredChunks::new(chunks, Box::new(on_end)))
}

/// Records a download of `[start, end]` of `file` that sent `sent` bytes, and gives back the
/// bytes of its reservation it did not send, in the background (the response is already over).
fn record_download(
    state: AppState,
    share: ShareRow,
    file: Uuid,
    visitor: Visitor,
    range: (u64, u64),
) -> impl FnOnce(u64) + Send {
    move |sent| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(file = %file, "download not recorded: no runtime");
            return;
        };
        let (start, end) = range;
        let length = (end + 1).saturating_sub(start);
        telemetry::download_bytes_served(sent);
        runtime.spawn(async move {
            let unsent = length.saturating_sub(sent);
            if let Err(e) = refund_bytes(&state, &share, file, unsent).await {
                // Conservative: the recipient may be refused a little early, never served more.
                tracing::warn!(file = %file, error = %e, "unsent download bytes not given back");
            }
            let details = serde_json::json!({
                "range": format!("{start}-{end}"),
                "bytes_sent": sent,
                "complete": sent == length,
            });
            let recorded =
                record(&state, &share, EventKind::Download, file, &visitor, details).await;
            if let Err(e) = recorded {
                tracing::error!(file = %file, error = %e, "download not recorded in the audit log");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_costs_its_range_and_allows_less_than_a_copy_in_flight() {
        let empty = download_cost(0, None);
        assert_eq!((empty.cost, empty.unit, empty.allowance), (1, 1, 0));
        let small = download_cost(100_000, Some((1, 99_999)));
        assert_eq!(
            (small.cost, small.unit, small.allowance),
            (99_999, 100_000, 50_000)
        );
        let gib = download_cost(1 << 30, Some((0, (1 << 30) - 1)));
        assert_eq!((gib.cost, gib.allowance), (1 << 30, 16 << 20));
        let large = download_cost(64 << 30, Some((5, 5)));
        assert_eq!((large.cost, large.allowance), (1, 1 << 30));
        for size in [1u64, 2, 3, 1000, 32 << 20, u64::MAX] {
            assert!(download_cost(size, None).allowance <= size / 2, "{size}");
        }
    }
}
