//! The shared state every request and job works with: small on purpose.

use std::sync::Arc;

use uuid::Uuid;

use crate::audit::{Actor, AuditEntry, EventKind};
use crate::auth::entra::verifier::Verifier;
use crate::config::Config;
use crate::crypto::CryptoError;
use crate::crypto::keys::{MasterKey, TenantKek};
use crate::db::Db;
use crate::store::ObjectStore;
use crate::writer_lock::UploadLocks;

/// Database, store, keys, configuration and the upload locks.
#[derive(Clone)]
pub struct AppState {
    /// Database pool.
    pub db: Db,
    /// Object store for sealed segments.
    pub store: Arc<dyn ObjectStore>,
    /// Root of the key hierarchy.
    pub master_key: Arc<MasterKey>,
    /// Resolved configuration.
    pub config: Arc<Config>,
    /// One writer per upload: in this process, and across instances on PostgreSQL.
    pub locks: UploadLocks,
    /// Base of public links (configured, or the bound address).
    pub public_url: Arc<str>,
    /// Sign-in with Entra ID for the Outlook add-in, when configured.
    pub entra: Option<Arc<Verifier>>,
}

impl AppState {
    /// The key-encryption key of a tenant, derived on demand (cheap: one HKDF).
    pub fn tenant_kek(&self, tenant_id: Uuid) -> Result<TenantKek, CryptoError> {
        self.master_key.tenant_kek(tenant_id)
    }

    /// Readiness: the database answers, so requests can be served.
    pub async fn check_ready(&self) -> Result<(), crate::db::DbError> {
        self.db.ping().await
    }

    /// An audit event for `tenant_id`'s chain, keyed for it (cheap: one HKDF).
    pub fn audit(
        &self,
        tenant_id: Uuid,
        kind: EventKind,
        actor: Actor,
        subject: Option<Uuid>,
        details: serde_json::Value,
    ) -> Result<AuditEntry, CryptoError> {
        AuditEntry::new(&self.master_key, tenant_id, kind, actor, subject, details)
    }
}
