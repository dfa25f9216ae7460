//! The relay listener's [`Gate`]: SMTP AUTH against the tenant's relay accounts, Microsoft 365
//! connectors by certificate (the tenant then comes from each message), envelope senders
//! against the tenants' domains, and messages into the queue.

use ferry_relay::smtp::server::{Gate, Received, Refusal, name_matches};
use uuid::Uuid;

use super::accounts::{self, RelayAccountError};
use super::queue::RelayQueue;
use super::{connector, domains};

/// Who is relaying on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayClient {
    /// A tenant's mail server, authenticated with its relay account.
    Tenant(Uuid),
    /// A Microsoft 365 connector (proved by its certificate): each message says whose it is.
    Microsoft365,
}

/// Accounts and queue of this deployment.
pub struct ServiceGate {
    /// Where accepted messages go (its database also holds the accounts).
    pub queue: RelayQueue,
    /// The certificate name pattern of Microsoft 365 connectors; `None`: none accepted.
    pub connector_cert_name: Option<String>,
}

impl Gate for ServiceGate {
    type Account = RelayClient;

    async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<RelayClient>, String> {
        match accounts::authenticate(&self.queue.db, username, password).await {
            Ok(tenant) => Ok(Some(RelayClient::Tenant(tenant))),
            Err(RelayAccountError::Unauthorized) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn certificate_account(&self, names: &[String]) -> Option<RelayClient> {
        let pattern = self.connector_cert_name.as_deref()?;
        names
            .iter()
            .any(|name| name_matches(pattern, name))
            .then_some(RelayClient::Microsoft365)
    }

    async fn may_send_as(&self, client: &RelayClient, sender: &str) -> Result<bool, String> {
        let db = &self.queue.db;
        let allowed = match client {
            RelayClient::Tenant(tenant) => domains::may_send_as(db, *tenant, sender).await,
            // Which tenant is known only from the message; some tenant must own the domain.
            RelayClient::Microsoft365 if sender.is_empty() => Ok(true),
            RelayClient::Microsoft365 => domains::owner_of(db, sender)
                .await
                .map(|owner| owner.is_some()),
        };
        allowed.map_err(|e| e.to_string())
    }

    async fn accept(&self, client: &RelayClient, message: Received) -> Result<String, Refusal> {
        let tenant = match client {
            RelayClient::Tenant(tenant) => *tenant,
            RelayClient::Microsoft365 => {
                connector::tenant_of(&self.queue.db, &message.from, &message.body).await?
            }
        };
        self.queue.enqueue(tenant, message).await
    }
}
