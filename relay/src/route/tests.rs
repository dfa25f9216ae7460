//! Each row of RELAY.md's decision table that needs no network.

use super::*;
use crate::mta_sts::parse_policy;

fn mx(records: &[(u16, &str)]) -> MxAnswer {
    MxAnswer::Records(
        records
            .iter()
            .map(|(preference, host)| Mx {
                preference: *preference,
                host: (*host).to_owned(),
            })
            .collect(),
    )
}

fn policy(mode: &str, mx: &[&str]) -> StsState {
    let mut text = format!("version: STSv1\nmode: {mode}\nmax_age: 86400\n");
    for pattern in mx {
        text.push_str(&format!("mx: {pattern}\n"));
    }
    StsState::Policy {
        id: "20261204".to_owned(),
        policy: parse_policy(text.as_bytes()).expect("valid policy"),
    }
}

fn hosts(plan: &Plan) -> Vec<(&str, u16)> {
    match plan {
        Plan::Try(attempts) => attempts
            .iter()
            .map(|a| (a.host.as_str(), a.preference))
            .collect(),
        other => panic!("expected attempts, got {other:?}"),
    }
}

#[test]
fn dns_failures_hold_and_never_relax() {
    let servfail = MxAnswer::TempFail("SERVFAIL".into());
    for sts in [StsState::NoPolicy, policy("enforce", &["*.example.nl"])] {
        assert_eq!(
            plan("example.nl", &servfail, &sts),
            Plan::Hold(HoldReason::Dns("SERVFAIL".into()))
        );
    }
}

#[test]
fn a_missing_domain_or_a_null_mx_bounces() {
    assert_eq!(
        plan("nowhere.example", &MxAnswer::NxDomain, &StsState::NoPolicy),
        Plan::Bounce(BounceReason::NoSuchDomain)
    );
    assert_eq!(
        plan("example.nl", &MxAnswer::NullMx, &StsState::NoPolicy),
        Plan::Bounce(BounceReason::NullMx)
    );
}

#[test]
fn without_a_policy_every_mx_needs_webpki_in_preference_order() {
    let answer = mx(&[
        (20, "B.example.nl."),
        (10, "a.example.nl."),
        (20, "c.example.nl"),
    ]);
    for sts in [StsState::NoPolicy, StsState::FetchFailed] {
        let plan = plan("example.nl", &answer, &sts);
        assert_eq!(
            hosts(&plan),
            [
                ("a.example.nl", 10),
                ("b.example.nl", 20),
                ("c.example.nl", 20)
            ]
        );
        let Plan::Try(attempts) = plan else {
            unreachable!()
        };
        assert!(attempts.iter().all(|a| a.proof
            == Proof::WebPki {
                testing_policy: None
            }));
    }
    // No MX records: the domain is its own host.
    assert_eq!(
        hosts(&plan("example.nl", &mx(&[]), &StsState::NoPolicy)),
        [("example.nl", 0)]
    );
}

#[test]
fn an_enforce_policy_skips_unlisted_mx_and_holds_when_none_is_left() {
    let answer = mx(&[
        (10, "mx1.example.nl"),
        (20, "evil.attacker.example"),
        (30, "mx2.example.nl"),
    ]);
    let sts = policy("enforce", &["*.example.nl"]);
    let planned = plan("example.nl", &answer, &sts);
    assert_eq!(
        hosts(&planned),
        [("mx1.example.nl", 10), ("mx2.example.nl", 30)]
    );
    let Plan::Try(attempts) = planned else {
        unreachable!()
    };
    assert!(attempts.iter().all(|a| a.proof
        == Proof::MtaSts {
            id: "20261204".into()
        }));

    let only_strangers = mx(&[(10, "mx.attacker.example")]);
    assert_eq!(
        plan("example.nl", &only_strangers, &sts),
        Plan::Hold(HoldReason::NoMxInPolicy {
            id: "20261204".into()
        })
    );
}

#[test]
fn a_testing_policy_blocks_nothing_but_is_recorded() {
    let answer = mx(&[(10, "mx.elsewhere.example")]);
    let planned = plan("example.nl", &answer, &policy("testing", &["*.example.nl"]));
    let Plan::Try(attempts) = planned else {
        panic!("testing must not block")
    };
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].proof,
        Proof::WebPki {
            testing_policy: Some("20261204".into())
        }
    );
    // Mode none: as if there were no policy.
    let planned = plan("example.nl", &answer, &policy("none", &[]));
    let Plan::Try(attempts) = planned else {
        panic!("none must not block")
    };
    assert_eq!(
        attempts[0].proof,
        Proof::WebPki {
            testing_policy: None
        }
    );
}
