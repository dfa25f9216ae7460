//! The chain rules: an intact chain verifies; any change, gap, cut or foreign key is named.

#![allow(clippy::unwrap_used)]
use super::*;

fn chain(key: &AuditKey, tenant: Uuid, n: i64) -> Vec<StoredEvent> {
    let mut prev = GENESIS.to_vec();
    (1..=n)
        .map(|seq| {
            let mut e = StoredEvent {
                tenant_id: tenant,
                seq,
                id: Uuid::new_v4(),
                at: time::macros::datetime!(2026-11-24 12:00:00.123456 UTC),
                kind: "share.created".into(),
                actor: "system".into(),
                subject: Some(Uuid::new_v4()),
                details: format!("{{\"n\":{seq}}}"),
                prev_hash: prev.clone(),
                hash: Vec::new(),
            };
            e.hash = event_hash(key, &e).to_vec();
            prev.clone_from(&e.hash);
            e
        })
        .collect()
}

fn verify(master: &MasterKey, tenant: Uuid, events: &[StoredEvent]) -> Result<i64, BrokenChain> {
    let mut verifier = ChainVerifier::new(tenant, master.audit_key(tenant).unwrap());
    for e in events {
        verifier.check(e)?;
    }
    let head = events.last().map(|e| (e.seq, e.hash.clone()));
    verifier.finish(head)
}

#[test]
fn an_intact_chain_verifies_and_any_change_is_named() {
    let master = MasterKey::generate().unwrap();
    let tenant = Uuid::new_v4();
    let events = chain(&master.audit_key(tenant).unwrap(), tenant, 5);
    assert_eq!(verify(&master, tenant, &events), Ok(5));

    let edits: [fn(&mut StoredEvent); 8] = [
        |e| e.kind = "share.revoked".into(),
        |e| e.actor = "key:x".into(),
        |e| e.details = "{\"n\":99}".into(),
        |e| e.subject = None,
        |e| e.at += time::Duration::microseconds(1),
        |e| e.id = Uuid::new_v4(),
        |e| e.hash[0] ^= 1,
        |e| e.prev_hash[0] ^= 1,
    ];
    for edit in edits {
        let mut tampered = events.clone();
        edit(&mut tampered[2]);
        let broken = verify(&master, tenant, &tampered).unwrap_err();
        // A changed hash shows at the event itself or, if only the stored hash changed,
        // no later than the next event's link to it.
        assert!((3..=4).contains(&broken.seq), "{broken}");
    }
    let mut missing = events.clone();
    missing.remove(1);
    assert_eq!(verify(&master, tenant, &missing).unwrap_err().seq, 2);
    let mut verifier = ChainVerifier::new(tenant, master.audit_key(tenant).unwrap());
    for e in &events[..4] {
        verifier.check(e).unwrap();
    }
    let cut = verifier.finish(Some((5, events[4].hash.clone())));
    assert_eq!(cut.unwrap_err().seq, 5);
}

#[test]
fn another_key_cannot_rebuild_a_chain() {
    let master = MasterKey::generate().unwrap();
    let forger = MasterKey::generate().unwrap();
    let tenant = Uuid::new_v4();
    let forged = chain(&forger.audit_key(tenant).unwrap(), tenant, 2);
    assert_eq!(verify(&master, tenant, &forged).unwrap_err().seq, 1);
    let other_tenant = Uuid::new_v4();
    let moved = chain(&master.audit_key(other_tenant).unwrap(), tenant, 2);
    assert_eq!(verify(&master, tenant, &moved).unwrap_err().seq, 1);
}
