//! Microsoft 365 connectors: Exchange Online does not do SMTP AUTH; it presents a certificate
//! (name `*.mail.protection.outlook.com` by default) and stamps each message with the sending
//! organisation's id (`X-MS-Exchange-CrossTenant-Id`). The certificate only proves the client
//! is Exchange Online — any Microsoft 365 organisation sends from there — so each message is
//! taken only when that header names an organisation linked to a Ferry tenant (`entra_links`)
//! and the envelope sender is in that tenant's domains.

use ferry_relay::smtp::server::Refusal;
use uuid::Uuid;

use super::domains;
use super::headers;
use crate::db::{Db, DbError};

/// The header Exchange Online stamps with the sending organisation's Entra tenant id.
pub const CROSS_TENANT_HEADER: &str = "X-MS-Exchange-CrossTenant-Id";

/// The certificate name a connector presents unless the operator configures another.
pub const DEFAULT_CERT_NAME: &str = "*.mail.protection.outlook.com";

/// The Ferry tenant a message from a connector is for, or why it is refused (permanently:
/// the same message would be refused again).
///
/// # Errors
/// A [`Refusal`]: no or conflicting tenant headers, an organisation not linked to Ferry, a
/// sender outside that tenant's domains; temporary when the database failed.
pub async fn tenant_of(db: &Db, from: &str, message: &[u8]) -> Result<Uuid, Refusal> {
    let stamped = headers::values(message, CROSS_TENANT_HEADER);
    let ids: Vec<Option<Uuid>> = stamped.iter().map(|v| Uuid::parse_str(v).ok()).collect();
    let organisation = match ids.split_first() {
        Some((Some(first), rest)) if rest.iter().all(|id| id.as_ref() == Some(first)) => *first,
        _ => {
            return Err(Refusal::Permanent(format!(
                "a connector's message must carry one {CROSS_TENANT_HEADER}"
            )));
        }
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "checking a connector's message failed");
        Refusal::Temporary("cannot check the sender now".to_owned())
    };
    let tenant = match db.entra_linked_tenant(organisation).await {
        Ok(tenant) => tenant,
        Err(DbError::NotFound) => {
            return Err(Refusal::Permanent(
                "this Microsoft 365 organisation does not relay through Ferry".to_owned(),
            ));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    match domains::may_send_as(db, tenant, from).await {
        Ok(true) => Ok(tenant),
        Ok(false) => Err(Refusal::Permanent(
            "the sender is not in a domain of this organisation".to_owned(),
        )),
        Err(e) => Err(unavailable(&e)),
    }
}
