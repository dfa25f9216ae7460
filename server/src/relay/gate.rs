//! The relay listener's [`Gate`]: SMTP AUTH against the tenant's relay accounts, and messages
//! into the queue.

use ferry_relay::smtp::server::{Gate, Received, Refusal};
use uuid::Uuid;

use super::accounts::{self, RelayAccountError};
use super::queue::RelayQueue;

/// Accounts and queue of this deployment.
pub struct ServiceGate {
    /// Where accepted messages go (its database also holds the accounts).
    pub queue: RelayQueue,
}

impl Gate for ServiceGate {
    type Account = Uuid;

    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<Uuid>, String> {
        match accounts::authenticate(&self.queue.db, username, password).await {
            Ok(tenant) => Ok(Some(tenant)),
            Err(RelayAccountError::Unauthorized) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn accept(&self, tenant: &Uuid, message: Received) -> Result<String, Refusal> {
        self.queue.enqueue(*tenant, message).await
    }
}
