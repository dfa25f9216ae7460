//! The relay's tables: accounts (through the domain functions, which own the format) and the
//! MTA-STS policy cache.

use anyhow::{Result, ensure};
use ferry::crypto::MasterKey;
use ferry::db::Db;
use ferry::db::relay::StoredStsPolicy;
use ferry::db::relay_queue::{NewRelayMessage, RecipientState};
use ferry::relay::accounts::{self, RelayAccountError};
use time::macros::datetime;
use uuid::Uuid;

on_both_backends!(
    relay_accounts_authenticate_until_revoked,
    mta_sts_policies_are_kept_by_domain,
    queued_recipients_are_claimed_once_and_deduplicated,
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

async fn queued_recipients_are_claimed_once_and_deduplicated(db: &Db) -> Result<()> {
    let (tenant, _) = super::tenant(db, "queueing").await?;
    let now = datetime!(2026-12-04 12:00:00 UTC);
    let recipients = vec![
        ("a@one.test".to_owned(), "one.test".to_owned()),
        ("b@one.test".to_owned(), "one.test".to_owned()),
        ("c@two.test".to_owned(), "two.test".to_owned()),
    ];
    let message = |id: Uuid| NewRelayMessage {
        id,
        tenant_id: tenant,
        message_id: "<m1@hospital.test>",
        envelope_from: "ward@hospital.test",
        size: 10,
        wrapped_dek: b"wrapped",
        received_at: now,
        hold_until: now + time::Duration::days(2),
        recipients: &recipients,
    };
    let first = Uuid::new_v4();
    ensure!(
        db.enqueue_relay_message(&message(first), &super::audit(tenant))
            .await?
            == 3
    );
    // The same Message-ID again (a client that lost the 250): nothing new.
    let again = Uuid::new_v4();
    ensure!(
        db.enqueue_relay_message(&message(again), &super::audit(tenant))
            .await?
            == 0
    );
    ensure!(
        db.relay_message(tenant, again).await.is_err(),
        "the duplicate left no row"
    );

    // Two claimants at once: every recipient goes to exactly one.
    let until = now + time::Duration::minutes(10);
    let one = db.claim_relay_work(now, until, "one", 2).await?;
    let two = db.claim_relay_work(now, until, "two", 10).await?;
    ensure!(one.len() == 2 && two.len() == 1, "{one:?} {two:?}");
    ensure!(
        db.claim_relay_work(now, until, "three", 10)
            .await?
            .is_empty()
    );
    let (other, _) = super::tenant(db, "other").await?;
    ensure!(
        db.relay_message(other, first).await.is_err(),
        "another tenant's message is not found"
    );

    // Only the claimant records; retry, deliver, bounce.
    ensure!(
        !db.record_relay_attempt(
            &one[0],
            "two",
            RecipientState::Delivered,
            None,
            Some("webpki"),
            &[]
        )
        .await?
    );
    let later = now + time::Duration::minutes(1);
    ensure!(
        db.record_relay_attempt(
            &one[0],
            "one",
            RecipientState::Retry(later),
            Some("4.x"),
            None,
            &[super::audit(tenant)]
        )
        .await?
    );
    ensure!(
        db.record_relay_attempt(
            &one[1],
            "one",
            RecipientState::Delivered,
            None,
            Some("mta-sts"),
            &[]
        )
        .await?
    );
    ensure!(
        db.record_relay_attempt(
            &two[0],
            "two",
            RecipientState::Bounced,
            Some("5.1.1"),
            None,
            &[]
        )
        .await?
    );
    ensure!(
        !db.shred_finished_relay_message(tenant, first).await?,
        "one recipient is still queued"
    );
    let stats = db.relay_queue_stats().await?;
    ensure!(
        stats.queued == 1 && stats.oldest_received == Some(now),
        "{stats:?}"
    );
    ensure!(
        stats.finished
            == [
                ("bounced".to_owned(), String::new(), 1),
                ("delivered".to_owned(), "mta-sts".to_owned(), 1)
            ],
        "{stats:?}"
    );
    ensure!(
        db.claim_relay_work(now, until, "one", 10).await?.is_empty(),
        "not due yet"
    );
    let retry = db
        .claim_relay_work(later, later + time::Duration::minutes(10), "one", 10)
        .await?;
    ensure!(retry.len() == 1 && retry[0].attempts == 1, "{retry:?}");
    ensure!(
        db.record_relay_attempt(
            &retry[0],
            "one",
            RecipientState::Expired,
            Some("held"),
            None,
            &[]
        )
        .await?
    );
    ensure!(db.shred_finished_relay_message(tenant, first).await?);
    ensure!(
        db.relay_message(tenant, first).await?.wrapped_dek.is_none(),
        "key shredded"
    );
    let states: Vec<String> = db
        .relay_recipients(tenant, first)
        .await?
        .into_iter()
        .map(|(r, s, a)| format!("{r}:{s}:{a}"))
        .collect();
    ensure!(
        states
            .iter()
            .filter(|s| s.ends_with(":delivered:1")
                || s.ends_with(":bounced:1")
                || s.ends_with(":expired:2"))
            .count()
            == 3,
        "{states:?}"
    );
    // Finished rows go once old enough (received at `now`), and only finished ones.
    ensure!(
        db.purge_finished_relay_messages(now).await? == 0,
        "not older than now"
    );
    ensure!(
        db.purge_finished_relay_messages(now + time::Duration::days(1))
            .await?
            >= 1
    );
    ensure!(matches!(
        db.relay_message(tenant, first).await,
        Err(ferry::db::DbError::NotFound)
    ));
    ensure!(db.relay_recipients(tenant, first).await?.is_empty());
    let left = db.relay_queue_ids(tenant, "<m1@hospital.test>").await?;
    ensure!(!left.contains(&first), "{left:?}");
    Ok(())
}
