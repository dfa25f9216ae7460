//! MTA-STS policies cached in the database, so a restart keeps them (RFC 8461 §5.1) and every
//! relay instance on one PostgreSQL shares them.

use ferry_relay::mta_sts::discover::{CachedPolicy, PolicyCache};

use crate::db::Db;
use crate::db::relay::StoredStsPolicy;

/// The relay's policy cache.
#[derive(Clone)]
pub struct DbPolicyCache(pub Db);

impl PolicyCache for DbPolicyCache {
    async fn get(&self, domain: &str) -> Option<CachedPolicy> {
        match self.0.sts_policy(&domain.to_ascii_lowercase()).await {
            Ok(found) => found.map(|p| CachedPolicy {
                id: p.policy_id,
                text: p.policy,
                fetched_at: p.fetched_at,
            }),
            Err(e) => {
                // No cache is the safe reading: the policy is fetched again.
                tracing::warn!(error = %e, domain, "reading the MTA-STS cache failed");
                None
            }
        }
    }

    async fn put(&self, domain: &str, policy: &CachedPolicy) {
        let stored = StoredStsPolicy {
            policy_id: policy.id.clone(),
            policy: policy.text.clone(),
            fetched_at: policy.fetched_at,
        };
        if let Err(e) = self
            .0
            .put_sts_policy(&domain.to_ascii_lowercase(), &stored)
            .await
        {
            tracing::warn!(error = %e, domain, "keeping an MTA-STS policy failed");
        }
    }
}
