//! Creating shares: one tokenized link over a set of complete files, with a retention that
//! never exceeds 90 days.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use time::format_description::well_known::Rfc3339;

use crate::audit::{Actor, EventKind};
use crate::auth::{Caller, Intent, mint_link_token};
use crate::db::shares::{NewShare, ShareFilesError, SharedFile};
use crate::state::AppState;

/// Retention when the sender asks for none and the tenant's policy does not say.
pub const DEFAULT_RETENTION_DAYS: u32 = 14;
/// The hard ceiling: no file lives longer than this.
pub const MAX_RETENTION_DAYS: u32 = 90;
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
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
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
    let token = mint_link_token().map_err(|_| ShareError::Random)?;
    let id = Uuid::new_v4();
    let expires_at = OffsetDateTime::now_utc() + Duration::days(days);
    let audit = state.audit(
        caller.tenant_id,
        EventKind::ShareCreated,
        Actor::Key(caller.key_id),
        Some(id),
        serde_json::json!({
            "files": files,
            "recipients": recipients,
            "retention_days": days,
            "expires_at": expires_at.format(&Rfc3339).unwrap_or_default(),
        }),
    )?;
    let shared = state
        .db
        .create_share(
            &NewShare {
                id,
                tenant_id: caller.tenant_id,
                created_by: caller.key_id,
                token_selector: &token.selector,
                token_hash: &token.secret_hash,
                note: request.note.as_deref(),
                expires_at,
                files: &files,
                files_created_by: caller.must_have_created(Intent::Write),
                recipients: &recipients,
            },
            &audit,
        )
        .await?;
    Ok(CreatedShare {
        id,
        url: format!("{}/d/{}", state.public_url, token.text),
        expires_at,
        files: shared,
    })
}

#[cfg(test)]
mod tests {
    use super::valid_email;

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
