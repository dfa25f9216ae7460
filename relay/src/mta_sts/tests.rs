//! The record and the policy as RFC 8461 writes them, and each way they can be wrong.

use super::*;

fn record(texts: &[&str]) -> Result<Option<Record>, MtaStsError> {
    parse_record(&texts.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
}

#[test]
fn the_record_names_its_id_and_others_are_ignored() {
    let id = |id: &str| Ok(Some(Record { id: id.to_owned() }));
    assert_eq!(
        record(&["v=STSv1; id=20160831085700Z;"]),
        id("20160831085700Z")
    );
    assert_eq!(record(&["v=STSv1;id=abc", "v=spf1 -all"]), id("abc"));
    assert_eq!(record(&["v=STSv1; id=abc; ext=1"]), id("abc"));
    assert_eq!(record(&["v=spf1 -all"]), Ok(None));
    assert_eq!(record(&[]), Ok(None));
}

#[test]
fn a_malformed_or_doubled_record_is_refused() {
    assert_eq!(
        record(&["v=STSv1; id=a", "v=STSv1; id=b"]),
        Err(MtaStsError::SeveralRecords)
    );
    for bad in [
        "v=STSv1;",
        "v=STSv1; id=",
        "v=STSv1; id=has-dash",
        "v=STSv1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "v=STSv1; id=a; id=b",
        "v=STSv1; junk",
        "v=STSv10; id=a",
    ] {
        assert!(
            matches!(record(&[bad]), Err(MtaStsError::Record(_))),
            "{bad}"
        );
    }
}

const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n\
                      mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

#[test]
fn the_rfc_example_parses() {
    let policy = parse_policy(POLICY.as_bytes()).expect("valid");
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.max_age, 604_800);
    assert_eq!(
        policy.mx,
        ["mail.example.com", "*.example.net", "backupmx.example.com"]
    );
    // LF-only lines, spaces around values, unknown keys and any order are fine.
    let loose = "mx: MX1.Example.Org\nfuture: 1\nmax_age:86400\n mode : testing\nversion: STSv1\n";
    let policy = parse_policy(loose.as_bytes()).expect("valid");
    assert_eq!(policy.mode, Mode::Testing);
    assert_eq!(policy.mx, ["mx1.example.org"]);
    // A year at most; `none` needs no mx.
    let long = "version: STSv1\nmode: none\nmax_age: 99999999\n";
    let policy = parse_policy(long.as_bytes()).expect("valid");
    assert_eq!((policy.mode, policy.max_age), (Mode::None, MAX_AGE_LIMIT));
}

#[test]
fn a_malformed_policy_is_refused() {
    let cases = [
        "mode: enforce\nmx: a.example\nmax_age: 1\n",
        "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1e3\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\ngarbage\n",
    ];
    for case in cases {
        assert!(
            matches!(parse_policy(case.as_bytes()), Err(MtaStsError::Policy(_))),
            "{case:?}"
        );
    }
    assert_eq!(
        parse_policy(&[0xff, 0xfe]),
        Err(MtaStsError::Policy("not UTF-8"))
    );
    let huge = format!("{POLICY}{}", "x: y\n".repeat(MAX_POLICY_BYTES / 5));
    assert_eq!(parse_policy(huge.as_bytes()), Err(MtaStsError::TooLarge));
}

#[test]
fn a_wildcard_covers_exactly_one_label() {
    let policy = parse_policy(POLICY.as_bytes()).expect("valid");
    for allowed in [
        "mail.example.com",
        "MAIL.EXAMPLE.COM.",
        "mx1.example.net",
        "backupmx.example.com",
    ] {
        assert!(policy.allows(allowed), "{allowed}");
    }
    for refused in [
        "example.net",
        "a.mx1.example.net",
        "mail.example.com.evil.example",
        "evilmail.example.com",
        "other.example.com",
        ".example.net",
    ] {
        assert!(!policy.allows(refused), "{refused}");
    }
}
