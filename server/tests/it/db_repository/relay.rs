//! The relay's tables: accounts (through the domain functions, which own the format) and the
//! MTA-STS policy cache.

use anyhow::{Result, ensure};
use ferry::crypto::MasterKey;
use ferry::db::Db;
use ferry::db::relay::StoredStsPolicy;
use ferry::relay::accounts::{self, RelayAccountError};
use time::macros::datetime;

on_both_backends!(
    relay_accounts_authenticate_until_revoked,
    mta_sts_policies_are_kept_by_domain,
);

fn master() -> Result<MasterKey> {
    Ok(MasterKey::from_base64(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )?)
}

async fn relay_accounts_authenticate_until_revoked(db: &Db) -> Result<()> {
    let master = master()?;
    let (tenant, _) = super::tenant(db, "relaying").await?;
    let (other, _) = super::tenant(db, "other").await?;
    let account = accounts::create(db, &master, tenant, ferry::audit::Actor::Operator).await?;
    let second = accounts::create(db, &master, other, ferry::audit::Actor::Operator).await?;
    ensure!(account.username.starts_with("fr_"));

    ensure!(accounts::authenticate(db, &account.username, &account.password).await? == tenant);
    ensure!(accounts::authenticate(db, &second.username, &second.password).await? == other);
    for (user, password) in [
        (account.username.as_str(), second.password.as_str()),
        (second.username.as_str(), account.password.as_str()),
        ("fr_nobodynobody", account.password.as_str()),
        ("", ""),
    ] {
        let refused = accounts::authenticate(db, user, password).await;
        ensure!(
            matches!(refused, Err(RelayAccountError::Unauthorized)),
            "{user}: {refused:?}"
        );
    }

    let (revoked_of, now) = accounts::revoke(
        db,
        &master,
        &account.username,
        ferry::audit::Actor::Operator,
    )
    .await?;
    ensure!(revoked_of == tenant && now);
    let refused = accounts::authenticate(db, &account.username, &account.password).await;
    ensure!(
        matches!(refused, Err(RelayAccountError::Unauthorized)),
        "{refused:?}"
    );
    let (_, again) = accounts::revoke(
        db,
        &master,
        &account.username,
        ferry::audit::Actor::Operator,
    )
    .await?;
    ensure!(!again, "a second revoke changes nothing");
    ensure!(accounts::authenticate(db, &second.username, &second.password).await? == other);

    let events: Vec<String> = db
        .audit_events(tenant, 0, None, None, 100)
        .await?
        .into_iter()
        .map(|e| e.kind)
        .collect();
    ensure!(
        events.ends_with(&[
            "relay_account.created".to_owned(),
            "relay_account.revoked".to_owned()
        ]),
        "{events:?}"
    );
    Ok(())
}

async fn mta_sts_policies_are_kept_by_domain(db: &Db) -> Result<()> {
    ensure!(db.sts_policy("example.org").await?.is_none());
    let first = StoredStsPolicy {
        policy_id: "20261204".into(),
        policy: "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n".into(),
        fetched_at: datetime!(2026-12-04 10:00:00.123456 UTC),
    };
    db.put_sts_policy("example.org", &first).await?;
    ensure!(db.sts_policy("example.org").await?.as_ref() == Some(&first));
    ensure!(db.sts_policy("example.net").await?.is_none());

    let second = StoredStsPolicy {
        policy_id: "20261205".into(),
        policy: "version: STSv1\nmode: testing\nmx: *.example.org\nmax_age: 600\n".into(),
        fetched_at: datetime!(2026-12-05 10:00:00 UTC),
    };
    db.put_sts_policy("example.org", &second).await?;
    ensure!(db.sts_policy("example.org").await?.as_ref() == Some(&second));
    Ok(())
}
