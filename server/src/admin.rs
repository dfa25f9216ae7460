//! Tenant admins' operations: the tenant's policy (read, and change it with its audit event),
//! its live files, and its audit log page by page. Each checks the admin role first; the HTTP
//! edge and, later, other front ends call these and nothing below them.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, EventKind, ExportedEvent};
use crate::auth::{Caller, Forbidden};
use crate::branding::{self, Branding, InvalidBranding};
use crate::crypto::CryptoError;
use crate::db::uploads::LiveFile;
use crate::db::{Db, DbError};
use crate::policy::{InvalidPolicy, Policy};
use crate::state::AppState;
use crate::tus::max_upload_len;

/// Most live files one page lists, and how many when the caller does not say.
pub const FILES_PAGE_MAX: u32 = 1000;
const FILES_PAGE_DEFAULT: u32 = 100;

/// Why an admin operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A sender key (403).
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A request outside the operation's bounds; the message says which (422).
    #[error("{0}")]
    Invalid(String),
    /// A policy outside Ferry's limits, naming the limit (422 `invalid_policy`).
    #[error(transparent)]
    InvalidPolicy(#[from] InvalidPolicy),
    /// A display name or logo outside the rules, naming the rule (422 `invalid_branding`).
    #[error(transparent)]
    InvalidBranding(#[from] InvalidBranding),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The audit event could not be keyed.
    #[error("the audit event could not be keyed")]
    Crypto(#[from] CryptoError),
}

/// Longest Message-ID looked up (RFC 5322 lines are at most 998 octets).
const MESSAGE_ID_MAX: usize = 998;

/// What the relay did with one message: each recipient's state now, and every attempt's proof
/// record from the audit chain.
#[derive(Debug)]
pub struct Deliveries {
    /// (recipient, state, attempts) per queued copy.
    pub recipients: Vec<(Uuid, String, String, u32)>,
    /// `relay.delivery` events, in chain order.
    pub attempts: Vec<ExportedEvent>,
}

/// The relay's record of the message with `message_id` (the header, with its angle
/// brackets) sent through the caller's tenant.
pub async fn deliveries(
    state: &AppState,
    caller: &Caller,
    message_id: &str,
) -> Result<Deliveries, AdminError> {
    caller.require_admin()?;
    if message_id.is_empty() || message_id.len() > MESSAGE_ID_MAX {
        return Err(AdminError::Invalid(format!(
            "message_id must be 1-{MESSAGE_ID_MAX} characters"
        )));
    }
    let mut found = Deliveries {
        recipients: Vec::new(),
        attempts: Vec::new(),
    };
    for queue_id in state
        .db
        .relay_queue_ids(caller.tenant_id, message_id)
        .await?
    {
        for (recipient, status, attempts) in state
            .db
            .relay_recipients(caller.tenant_id, queue_id)
            .await?
        {
            found
                .recipients
                .push((queue_id, recipient, status, attempts));
        }
        let events = state
            .db
            .audit_events_about(
                caller.tenant_id,
                queue_id,
                EventKind::RelayDelivery.as_str(),
                10_000,
            )
            .await?;
        found
            .attempts
            .extend(events.into_iter().map(ExportedEvent::from));
    }
    Ok(found)
}

/// The caller's tenant's policy.
pub async fn tenant_policy(state: &AppState, caller: &Caller) -> Result<Policy, AdminError> {
    caller.require_admin()?;
    Ok(state.db.policy(caller.tenant_id).await?)
}

/// Replaces the tenant's policy once it is inside Ferry's limits (and the store's largest
/// object); the `policy.changed` event records it before and after, in the same transaction.
pub async fn set_policy(
    state: &AppState,
    caller: &Caller,
    policy: Policy,
) -> Result<Policy, AdminError> {
    caller.require_admin()?;
    let policy = policy.validated(max_upload_len(state))?;
    let before = state.db.policy(caller.tenant_id).await?;
    let audit = state.audit(
        caller.tenant_id,
        EventKind::PolicyChanged,
        caller.actor(),
        None,
        serde_json::json!({ "before": before, "after": policy }),
    )?;
    state
        .db
        .set_policy(caller.tenant_id, &policy, &audit)
        .await?;
    tracing::info!(tenant = %caller.tenant_id, "policy changed");
    Ok(policy)
}

/// How the caller's tenant appears on its recipients' pages (as stored; a logo whose type is
/// not one Ferry shows is left out).
pub async fn tenant_branding(state: &AppState, caller: &Caller) -> Result<Branding, AdminError> {
    caller.require_admin()?;
    Ok(branding::of_tenant(&state.db, caller.tenant_id)
        .await?
        .1
        .to_api())
}

/// Replaces the tenant's display name and logo once they pass the rules; `branding.changed`
/// records the new name and the logo's type and size (not the image), in the same transaction.
pub async fn set_branding(
    state: &AppState,
    caller: &Caller,
    branding: &Branding,
) -> Result<Branding, AdminError> {
    caller.require_admin()?;
    let valid = branding.validated()?;
    let audit = state.audit(
        caller.tenant_id,
        EventKind::BrandingChanged,
        caller.actor(),
        None,
        serde_json::json!({
            "display_name": valid.display_name,
            "logo": valid.logo.as_ref().map(|l| serde_json::json!({
                "content_type": l.content_type, "bytes": l.bytes.len(),
            })),
        }),
    )?;
    let logo = valid
        .logo
        .as_ref()
        .map(|l| (l.content_type, l.bytes.as_slice()));
    state
        .db
        .set_branding(
            caller.tenant_id,
            valid.display_name.as_deref(),
            logo,
            &audit,
        )
        .await?;
    tracing::info!(tenant = %caller.tenant_id, "branding changed");
    Ok(valid.to_api())
}

/// One page of the tenant's live files, in id order.
pub struct FilesPage {
    /// The files.
    pub files: Vec<LiveFile>,
    /// The id to ask for the next page after; `None` on the last page.
    pub next_after: Option<Uuid>,
}

/// The tenant's complete, not yet destroyed files after `after`, at most `limit` (default 100).
pub async fn live_files(
    state: &AppState,
    caller: &Caller,
    after: Option<Uuid>,
    limit: Option<u32>,
) -> Result<FilesPage, AdminError> {
    caller.require_admin()?;
    let limit = limit.unwrap_or(FILES_PAGE_DEFAULT);
    if !(1..=FILES_PAGE_MAX).contains(&limit) {
        return Err(AdminError::Invalid(format!(
            "limit must be between 1 and {FILES_PAGE_MAX}"
        )));
    }
    let files = state.db.live_files(caller.tenant_id, after, limit).await?;
    let next_after = match files.last() {
        Some(last) if files.len() == limit as usize => Some(last.id),
        _ => None,
    };
    Ok(FilesPage { files, next_after })
}

/// The tenant's audit events in a time window, read page by page so an export of any length
/// holds one page in memory.
pub struct AuditPages {
    db: Db,
    tenant_id: Uuid,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    after_seq: i64,
    first: Option<Vec<ExportedEvent>>,
}

/// Opens the audit export of the caller's tenant. The first page is read now, so a failing
/// database is refused before anything is answered.
pub async fn audit_export(
    state: &AppState,
    caller: &Caller,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<AuditPages, AdminError> {
    caller.require_admin()?;
    let mut pages = AuditPages {
        db: state.db.clone(),
        tenant_id: caller.tenant_id,
        since,
        until,
        after_seq: 0,
        first: None,
    };
    pages.first = Some(pages.read().await?);
    Ok(pages)
}

impl AuditPages {
    async fn read(&mut self) -> Result<Vec<ExportedEvent>, DbError> {
        let page = self
            .db
            .audit_events(
                self.tenant_id,
                self.after_seq,
                self.since,
                self.until,
                audit::PAGE,
            )
            .await?;
        if let Some(last) = page.last() {
            self.after_seq = last.seq;
        }
        Ok(page.into_iter().map(ExportedEvent::from).collect())
    }

    /// The next page; empty once every event was read.
    pub async fn next_page(&mut self) -> Result<Vec<ExportedEvent>, DbError> {
        match self.first.take() {
            Some(first) => Ok(first),
            None => self.read().await,
        }
    }
}
