//! Shares as a domain: creating one (a tokenized link over complete files, with a retention
//! that never exceeds the tenant's maximum), its state, its status for the sender, revoking
//! it. The HTTP edge, the add-in and the relay all go through these functions.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use time::format_description::well_known::Rfc3339;

use crate::audit::EventKind;
use crate::auth::{Caller, Intent, mint_link_token};
use crate::db::share_links::ShareLinkRow;
use crate::db::share_status::ShareDetails;
use crate::db::shares::{NewShare, ShareFilesError, SharedFile};
use crate::policy::{MAX_RETENTION_DAYS, Policy};
use crate::state::AppState;

pub mod links;

/// Files per share and recipients per share.
const MAX_ITEMS: usize = 1000;

/// A share as requested by a sender.
pub struct CreateShare {
    /// Complete files of the caller's tenant.
    pub files: Vec<Uuid>,
    /// Recipient addresses.
    pub recipients: Vec<String>,
    /// Requested retention; the tenant policy's default if none, clamped to its maximum.
    pub retention_days: Option<i64>,
    /// Optional note shown on the recipients' page.
    pub note: Option<String>,
}

/// A created share; `url` carries the token and is shown only now.
pub struct CreatedShare {
    /// Share id.
    pub id: Uuid,
    /// The download link.
    pub url: String,
    /// When the link stops working.
    pub expires_at: OffsetDateTime,
    /// Whether `expires_at` is earlier than the retention asked for, because a file reaches
    /// the end of its life first (see [`file_end`]).
    pub expiry_capped: bool,
    /// The shared files.
    pub files: Vec<SharedFile>,
}

/// Why a share cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The request is malformed; the message says how (422).
    #[error("{0}")]
    Invalid(String),
    /// A file cannot be shared.
    #[error(transparent)]
    Files(#[from] ShareFilesError),
    /// No randomness for the token.
    #[error("the system random generator failed")]
    Random,
    /// The tenant's policy could not be read.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The audit event could not be keyed.
    #[error("the audit event could not be keyed")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A recipient link was asked for someone who is not one of the share's recipients (422).
    #[error("{0:?} is not a recipient of this share")]
    NotARecipient(String),
    /// The share no longer serves (409): no new links to it.
    #[error("the share is {}", .0.as_str())]
    Inactive(ShareState),
    /// A link found in a relayed message could not be looked up (the store or keys failed).
    #[error("a link could not be resolved: {0}")]
    Unresolved(String),
}

/// The rules of the caller's tenant a sender works within (retention default and maximum,
/// upload size, recipient domains, download limit): the add-in offers the retention choices
/// they allow. Every role may read them; only admins change them.
pub async fn sending_policy(state: &AppState, caller: &Caller) -> Result<Policy, ShareError> {
    Ok(state.db.policy(caller.tenant_id).await?)
}

/// Where a share is in its life. One rule for the recipients' side (only `Active` serves)
/// and the sender's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareState {
    /// The link works.
    Active,
    /// Its expiry passed, or the expiry job ended it (a file it held was destroyed).
    Expired,
    /// Its sender or an admin revoked it.
    Revoked,
}

impl ShareState {
    /// The state at `now` of a share with these times; revocation wins over expiry.
    pub fn at(
        now: OffsetDateTime,
        revoked_at: Option<OffsetDateTime>,
        ended_at: Option<OffsetDateTime>,
        expires_at: OffsetDateTime,
    ) -> ShareState {
        if revoked_at.is_some() {
            ShareState::Revoked
        } else if ended_at.is_some() || expires_at <= now {
            ShareState::Expired
        } else {
            ShareState::Active
        }
    }

    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareState::Active => "active",
            ShareState::Expired => "expired",
            ShareState::Revoked => "revoked",
        }
    }
}

/// A share as its sender sees it.
pub struct ShareReport {
    /// What the database holds, with per-file download counts.
    pub details: ShareDetails,
    /// Its state now.
    pub state: ShareState,
    /// Its recipients' own links (never their tokens).
    pub links: Vec<ShareLinkRow>,
}

/// The sender's view of share `id`: senders see their own shares, admins any of the tenant's.
pub async fn share_status(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<ShareReport, ShareError> {
    let details = state
        .db
        .share_details(caller.tenant_id, id, caller.must_have_created(Intent::Read))
        .await?;
    let share_state = ShareState::at(
        OffsetDateTime::now_utc(),
        details.revoked_at,
        details.ended_at,
        details.expires_at,
    );
    let links = state.db.share_links(caller.tenant_id, id).await?;
    Ok(ShareReport {
        details,
        state: share_state,
        links,
    })
}

/// Revokes share `id` at once (its links answer 410 from the next request on); revoking a
/// revoked share changes nothing. Admins revoke any share of their tenant, senders their own.
pub async fn revoke_share(state: &AppState, caller: &Caller, id: Uuid) -> Result<(), ShareError> {
    let audit = state.audit(
        caller.tenant_id,
        EventKind::ShareRevoked,
        caller.actor(),
        Some(id),
        serde_json::json!({}),
    )?;
    state
        .db
        .revoke_share(
            caller.tenant_id,
            id,
            caller.must_have_created(Intent::Delete),
            &audit,
        )
        .await?;
    tracing::info!(share = %id, tenant = %caller.tenant_id, "share revoked");
    Ok(())
}

fn valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>' && c != ',')
}

/// Creates a share for `caller`.
pub async fn create_share(
    state: &AppState,
    caller: &Caller,
    request: CreateShare,
) -> Result<CreatedShare, ShareError> {
    if request.files.is_empty() || request.files.len() > MAX_ITEMS {
        return Err(ShareError::Invalid(format!(
            "files must list 1 to {MAX_ITEMS} file ids"
        )));
    }
    if request.recipients.is_empty() || request.recipients.len() > MAX_ITEMS {
        return Err(ShareError::Invalid(format!(
            "recipients must list 1 to {MAX_ITEMS} addresses"
        )));
    }
    let mut recipients = Vec::with_capacity(request.recipients.len());
    for address in &request.recipients {
        let address = address.trim();
        if !valid_email(address) {
            return Err(ShareError::Invalid(format!(
                "{address:?} is not an e-mail address"
            )));
        }
        recipients.push(address.to_lowercase());
    }
    let mut files = request.files.clone();
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(*f));
    let policy = state.db.policy(caller.tenant_id).await?;
    if let Some(address) = recipients.iter().find(|a| !policy.allows_recipient(a)) {
        return Err(ShareError::Invalid(format!(
            "{address:?} is outside the recipient domains this tenant allows"
        )));
    }
    let requested = match request.retention_days {
        None => None,
        Some(days) if days < 1 => {
            return Err(ShareError::Invalid(
                "retention_days must be at least 1".into(),
            ));
        }
        Some(days) => Some(u32::try_from(days).unwrap_or(u32::MAX)),
    };
    let days = i64::from(policy.retention_days(requested));
    if request.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return Err(ShareError::Invalid(
            "note must be at most 2000 bytes".into(),
        ));
    }
    let files_created_by = caller.must_have_created(Intent::Write);
    let asked = OffsetDateTime::now_utc() + Duration::days(days);
    let ages = state
        .db
        .file_ages(caller.tenant_id, &files, files_created_by)
        .await?;
    let last_day = ages
        .iter()
        .map(|&(created, completed)| file_end(created, completed, policy.max_days))
        .min();
    let expires_at = last_day.map_or(asked, |end| asked.min(end));
    let capped = expires_at < asked;
    let token = mint_link_token().map_err(|_| ShareError::Random)?;
    let id = Uuid::new_v4();
    let audit = state.audit(
        caller.tenant_id,
        EventKind::ShareCreated,
        caller.actor(),
        Some(id),
        serde_json::json!({
            "files": files,
            "recipients": recipients,
            "retention_days": days,
            "expires_at": expires_at.format(&Rfc3339).unwrap_or_default(),
            "expiry_capped": capped,
        }),
    )?;
    let shared = state
        .db
        .create_share(
            &NewShare {
                id,
                tenant_id: caller.tenant_id,
                created_by: caller.principal_id,
                token_selector: &token.selector,
                token_hash: &token.secret_hash,
                note: request.note.as_deref(),
                expires_at,
                files: &files,
                files_created_by,
                recipients: &recipients,
            },
            &audit,
        )
        .await?;
    Ok(CreatedShare {
        id,
        url: format!("{}/d/{}", state.public_url, token.text),
        expires_at,
        expiry_capped: capped,
        files: shared,
    })
}

/// The last moment a file may live, whatever is shared later: `max_days` (the tenant's
/// maximum retention) after its upload completed, and never past the store's lifecycle
/// backstop, which counts [`MAX_RETENTION_DAYS`] + 1 days from when its object was begun (no
/// earlier than the upload's creation). Re-sharing cannot push a file past this.
pub fn file_end(
    created: OffsetDateTime,
    completed: OffsetDateTime,
    max_days: u32,
) -> OffsetDateTime {
    let by_policy = completed + Duration::days(i64::from(max_days.min(MAX_RETENTION_DAYS)));
    let by_lifecycle = created + Duration::days(i64::from(MAX_RETENTION_DAYS) + 1);
    by_policy.min(by_lifecycle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_ends_max_days_after_completion_or_at_the_lifecycle_backstop() {
        let created = OffsetDateTime::UNIX_EPOCH;
        let quick = created + Duration::hours(1);
        assert_eq!(file_end(created, quick, 30), quick + Duration::days(30));
        assert_eq!(file_end(created, quick, 90), quick + Duration::days(90));
        // An upload that took ten days ends 91 days after it began, not 100.
        let slow = created + Duration::days(10);
        assert_eq!(file_end(created, slow, 90), created + Duration::days(91));
        // A policy beyond the ceiling cannot exist, but the rule holds anyway.
        assert_eq!(file_end(created, quick, 400), quick + Duration::days(90));
    }

    #[test]
    fn recognises_addresses() {
        assert!(valid_email("a@x.eu"));
        assert!(valid_email("first.last+tag@hospital.example.org"));
        for bad in [
            "",
            "a",
            "@x.eu",
            "a@x",
            "a@.eu",
            "a b@x.eu",
            "a@x.eu,b@y.eu",
            "<a@x.eu>",
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }
}
