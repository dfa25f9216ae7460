//! One link per recipient: a share's recipient gets a token of their own, so every download
//! names whom it was for and one recipient's link is revoked without touching the others.
//! Senders mint them over HTTP; the relay mints one for each recipient's copy of a message
//! that carries a share link ([`relink_for_recipient`]). Only a share's recipients get one.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{ShareError, ShareState};
use crate::audit::{Actor, AuditEntry, EventKind};
use crate::auth::{Caller, Intent, mint_link_token};
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::db::share_links::NewShareLink;
use crate::download::{DownloadError, resolve_token};
use crate::state::AppState;

/// A recipient link just minted; `url` carries its token and is shown only now.
pub struct RecipientLink {
    /// Link id (for revoking it).
    pub id: Uuid,
    /// Whom it is for.
    pub recipient: String,
    /// `<public URL>/d/<token>`.
    pub url: String,
    /// The token alone (the relay puts it in place of the share's).
    pub token: String,
    /// When it was minted.
    pub created_at: OffsetDateTime,
}

/// Mints a link to share `share_id` for `recipient`, one of its recipients. Handing a share
/// out is writing it: senders mint links to their own shares only, as they create them.
pub async fn mint_recipient_link(
    state: &AppState,
    caller: &Caller,
    share_id: Uuid,
    recipient: &str,
) -> Result<RecipientLink, ShareError> {
    let recipient = recipient.trim().to_lowercase();
    let details = state
        .db
        .share_details(
            caller.tenant_id,
            share_id,
            caller.must_have_created(Intent::Write),
        )
        .await?;
    let now = OffsetDateTime::now_utc();
    let share_state = ShareState::at(
        now,
        details.revoked_at,
        details.ended_at,
        details.expires_at,
    );
    if share_state != ShareState::Active {
        return Err(ShareError::Inactive(share_state));
    }
    if !details.recipients.contains(&recipient) {
        return Err(ShareError::NotARecipient(recipient));
    }
    mint(
        &state.db,
        &state.master_key,
        &state.public_url,
        Minting {
            tenant_id: caller.tenant_id,
            share_id,
            recipient: &recipient,
            actor: caller.actor(),
            queue_id: None,
        },
    )
    .await
}

/// Revokes link `link_id` of share `share_id`: it answers 410 from the next request on, the
/// share and its other links keep working. Admins revoke any link of their tenant, senders
/// those of their own shares; revoking twice changes nothing.
pub async fn revoke_recipient_link(
    state: &AppState,
    caller: &Caller,
    share_id: Uuid,
    link_id: Uuid,
) -> Result<(), ShareError> {
    let audit = state.audit(
        caller.tenant_id,
        EventKind::ShareLinkRevoked,
        caller.actor(),
        Some(share_id),
        serde_json::json!({ "link": link_id }),
    )?;
    state
        .db
        .revoke_share_link(
            caller.tenant_id,
            share_id,
            link_id,
            caller.must_have_created(Intent::Delete),
            &audit,
        )
        .await?;
    Ok(())
}

/// What one recipient's copy of a message carries in place of a share link found in it
/// (the relay keeps it, sealed, between attempts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relink {
    /// Their own link's token (minted now).
    Own(String),
    /// Nothing that works: they are not on the share.
    Withheld,
    /// The link as it was: not a live share of this tenant (another tenant's, expired,
    /// revoked, or no link at all), so there is nothing of this tenant's to hand out.
    Untouched,
}

/// The relay's way in: what `recipient` gets for link `token`, found in a message that
/// `tenant`'s mail server sent (message `queue_id`). A recipient of the share gets a link of
/// their own; anyone else gets none that works.
pub async fn relink_for_recipient(
    db: &Db,
    master: &MasterKey,
    tenant_id: Uuid,
    token: &str,
    recipient: &str,
    queue_id: Uuid,
) -> Result<Relink, ShareError> {
    let share = match resolve_token(db, token).await {
        Ok(share) => share,
        Err(DownloadError::NotFound | DownloadError::Gone { .. }) => return Ok(Relink::Untouched),
        Err(DownloadError::Db(e)) => return Err(e.into()),
        Err(other) => return Err(ShareError::Unresolved(other.to_string())),
    };
    if share.tenant_id != tenant_id {
        return Ok(Relink::Untouched);
    }
    let recipient = recipient.trim().to_lowercase();
    if !db
        .is_share_recipient(tenant_id, share.id, &recipient)
        .await?
    {
        return Ok(Relink::Withheld);
    }
    let link = mint(
        db,
        master,
        "",
        Minting {
            tenant_id,
            share_id: share.id,
            recipient: &recipient,
            actor: Actor::System,
            queue_id: Some(queue_id),
        },
    )
    .await?;
    Ok(Relink::Own(link.token))
}

/// One link to mint.
struct Minting<'a> {
    tenant_id: Uuid,
    share_id: Uuid,
    recipient: &'a str,
    actor: Actor,
    /// The relayed message it is minted for, if the relay mints it.
    queue_id: Option<Uuid>,
}

/// Mints and stores a link with its `share_link.created` event (never the token).
async fn mint(
    db: &Db,
    master: &MasterKey,
    public_url: &str,
    minting: Minting<'_>,
) -> Result<RecipientLink, ShareError> {
    let token = mint_link_token().map_err(|_| ShareError::Random)?;
    let id = Uuid::new_v4();
    let mut details = serde_json::json!({ "link": id, "recipient": minting.recipient });
    if let (Some(fields), Some(queue_id)) = (details.as_object_mut(), minting.queue_id) {
        fields.insert("relay_message".into(), serde_json::json!(queue_id));
    }
    let audit = AuditEntry::new(
        master,
        minting.tenant_id,
        EventKind::ShareLinkCreated,
        minting.actor,
        Some(minting.share_id),
        details,
    )?;
    let created_at = db
        .create_share_link(
            &NewShareLink {
                id,
                share_id: minting.share_id,
                tenant_id: minting.tenant_id,
                recipient: minting.recipient,
                token_selector: &token.selector,
                token_hash: &token.secret_hash,
            },
            &audit,
        )
        .await?;
    Ok(RecipientLink {
        id,
        recipient: minting.recipient.to_owned(),
        url: format!("{public_url}/d/{}", token.text),
        token: token.text,
        created_at,
    })
}
