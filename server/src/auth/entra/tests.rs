//! Tokens signed here with a freshly generated RSA key, the way Entra signs them, and every
//! way a token must be refused.

use aws_lc_rs::hmac;
use ferry_testkit::entra::{JwksServer, Signer, access_token_claims};
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_800_000_000;
const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID: &str = "00000000-0000-0000-66f3-3332eca7ea81";
const CLIENT_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

/// Tokens as strings (a signing failure fails the test).
trait Sign {
    fn tok(&self, claims: &Value) -> String;
}

impl Sign for Signer {
    fn tok(&self, claims: &Value) -> String {
        self.token(claims).expect("sign")
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims() -> Value {
    let mut claims =
        access_token_claims(TID, OID, "an.de.vries@ziekenhuis.example", CLIENT_ID, NOW);
    claims["scp"] = json!("openid access_as_user");
    claims
}

fn with(change: &[(&str, Value)]) -> Value {
    let mut claims = claims();
    for (key, value) in change {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(*key);
        } else {
            claims[*key] = value.clone();
        }
    }
    claims
}

fn expect() -> Expectations {
    Expectations {
        audiences: vec![
            CLIENT_ID.to_owned(),
            format!("api://files.example.eu/{CLIENT_ID}"),
        ],
        scope: "access_as_user".to_owned(),
    }
}

fn keys(signers: &[&Signer]) -> SigningKeys {
    let jwks = json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() });
    SigningKeys::from_jwks(jwks.to_string().as_bytes()).expect("jwks")
}

#[test]
fn a_valid_token_names_its_tenant_and_user() {
    let signer = Signer::new("key-1").expect("rsa key");
    let user = validate(&signer.tok(&claims()), &keys(&[&signer]), &expect(), NOW);
    assert_eq!(
        user,
        Ok(EntraUser {
            tenant: Uuid::parse_str(TID).expect("tid"),
            object_id: Uuid::parse_str(OID).expect("oid"),
            address: Some("an.de.vries@ziekenhuis.example".into()),
            directory_roles: vec![],
        })
    );
    // The application ID URI is an accepted audience too; clocks may be two minutes apart.
    let uri = with(&[("aud", json!(format!("api://files.example.eu/{CLIENT_ID}")))]);
    assert!(validate(&signer.tok(&uri), &keys(&[&signer]), &expect(), NOW).is_ok());
    let just_expired = with(&[("exp", json!(NOW - 60))]);
    assert!(
        validate(
            &signer.tok(&just_expired),
            &keys(&[&signer]),
            &expect(),
            NOW
        )
        .is_ok()
    );
    assert_eq!(key_id(&signer.tok(&claims())).as_deref(), Some("key-1"));
}

#[test]
fn claims_that_do_not_hold_are_refused() {
    let signer = Signer::new("key-1").expect("rsa key");
    let keys = keys(&[&signer]);
    let other_tenant =
        "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0";
    let cases = [
        (with(&[("aud", json!("another-app"))]), TokenError::Audience),
        (with(&[("aud", Value::Null)]), TokenError::Audience),
        (with(&[("iss", json!(other_tenant))]), TokenError::Issuer),
        (
            with(&[(
                "iss",
                json!("https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"),
            )]),
            TokenError::Issuer,
        ),
        (with(&[("ver", json!("1.0"))]), TokenError::Issuer),
        (with(&[("exp", json!(NOW - 121))]), TokenError::Expired),
        (with(&[("exp", Value::Null)]), TokenError::Expired),
        (with(&[("nbf", json!(NOW + 121))]), TokenError::NotYetValid),
        (
            with(&[("scp", json!("openid profile"))]),
            TokenError::Scope("access_as_user".into()),
        ),
        (
            with(&[("scp", json!("access_as_user_not"))]),
            TokenError::Scope("access_as_user".into()),
        ),
        (
            with(&[("scp", Value::Null)]),
            TokenError::Scope("access_as_user".into()),
        ),
        (with(&[("tid", json!("not-a-guid"))]), TokenError::Subject),
        (with(&[("oid", Value::Null)]), TokenError::Subject),
    ];
    for (claims, refused) in cases {
        assert_eq!(
            validate(&signer.tok(&claims), &keys, &expect(), NOW),
            Err(refused),
            "{claims}"
        );
    }
}

#[test]
fn forged_and_malformed_tokens_are_refused() {
    let signer = Signer::new("key-1").expect("rsa key");
    let keys = keys(&[&signer]);
    let good = signer.tok(&claims());

    // A key the JWKS does not hold, and a key that claims the kid of one it does.
    let stranger = Signer::new("key-2").expect("rsa key");
    assert_eq!(
        validate(&stranger.tok(&claims()), &keys, &expect(), NOW),
        Err(TokenError::UnknownKey("key-2".into()))
    );
    let impostor = Signer::new("key-1").expect("rsa key");
    assert_eq!(
        validate(&impostor.tok(&claims()), &keys, &expect(), NOW),
        Err(TokenError::Signature)
    );

    // Claims changed after signing.
    let (head, rest) = good.split_once('.').expect("header");
    let signature = rest.split_once('.').expect("claims").1;
    let tampered = format!(
        "{head}.{}.{signature}",
        encode(&with(&[(
            "oid",
            json!("11111111-1111-1111-1111-111111111111")
        )]))
    );
    assert_eq!(
        validate(&tampered, &keys, &expect(), NOW),
        Err(TokenError::Signature)
    );

    // alg: none, with and without a signature part.
    let none_header = encode(&json!({"alg": "none", "kid": "key-1"}));
    let unsigned = format!("{none_header}.{}.", encode(&claims()));
    assert_eq!(
        validate(&unsigned, &keys, &expect(), NOW),
        Err(TokenError::Algorithm("none".into()))
    );
    assert_eq!(key_id(&unsigned), None);

    // HS256 with the public key as the HMAC secret (the classic key-confusion forgery).
    let header = encode(&json!({"alg": "HS256", "kid": "key-1"}));
    let signed = format!("{header}.{}", encode(&claims()));
    let secret = signer.jwk()["n"].as_str().expect("n").to_owned();
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        signed.as_bytes(),
    );
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(
        validate(&forged, &keys, &expect(), NOW),
        Err(TokenError::Algorithm("HS256".into()))
    );

    // Shapes that are not a JWS at all.
    let too_long = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        &format!("{good}.extra"),
        "!!!.???.***",
        &too_long,
    ] {
        assert_eq!(
            validate(bad, &keys, &expect(), NOW),
            Err(TokenError::Malformed),
            "{}",
            &bad[..bad.len().min(40)]
        );
    }
}

#[test]
fn only_rsa_signing_keys_are_taken_from_a_jwks() {
    let signer = Signer::new("key-1").expect("rsa key");
    let jwks = json!({"keys": [
        signer.jwk(),
        {"kty": "RSA", "use": "enc", "kid": "enc-key", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
    ]});
    let keys = SigningKeys::from_jwks(jwks.to_string().as_bytes()).expect("jwks");
    assert!(keys.has("key-1"));
    for skipped in ["enc-key", "ec-key", "no-n"] {
        assert!(!keys.has(skipped), "{skipped}");
    }
    assert!(SigningKeys::from_jwks(b"{\"not\": \"a jwks\"}").is_err());
}

#[tokio::test]
async fn keys_are_fetched_once_and_again_only_for_a_new_kid() {
    use super::jwks::KeyCache;
    use std::time::Duration;

    let (old, new) = (
        Signer::new("key-1").expect("rsa key"),
        Signer::new("key-2").expect("rsa key"),
    );
    let server = JwksServer::start(&[&old]).await.expect("jwks server");
    let cache = KeyCache::new(&server.url, Duration::ZERO).expect("cache");
    for _ in 0..20 {
        let user = cache.validate(&old.tok(&claims()), &expect(), NOW).await;
        assert!(user.is_ok(), "{user:?}");
    }
    assert_eq!(server.hits(), 1, "one fetch for 20 tokens");

    // Entra rolls its keys over: a token with the new kid makes the cache fetch again.
    server.rotate_to(&[&old, &new]);
    assert!(
        cache
            .validate(&new.tok(&claims()), &expect(), NOW)
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 2);
    // A refused token does not make the keys forgotten.
    let wrong_audience = with(&[("aud", json!("another-app"))]);
    assert!(matches!(
        cache
            .validate(&old.tok(&wrong_audience), &expect(), NOW)
            .await,
        Err(super::jwks::EntraError::Token(TokenError::Audience))
    ));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn made_up_kids_cost_one_fetch_per_interval() {
    use super::jwks::{EntraError, KeyCache};
    use std::time::Duration;

    let signer = Signer::new("key-1").expect("rsa key");
    let server = JwksServer::start(&[&signer]).await.expect("jwks server");
    let cache = KeyCache::new(&server.url, Duration::from_secs(3600)).expect("cache");
    assert!(
        cache
            .validate(&signer.tok(&claims()), &expect(), NOW)
            .await
            .is_ok()
    );
    // One stranger's key signs tokens under many made-up kids.
    let mut stranger = Signer::new("made-up").expect("rsa key");
    for n in 0..20 {
        stranger.kid = format!("made-up-{n}");
        let refused = cache
            .validate(&stranger.tok(&claims()), &expect(), NOW)
            .await;
        assert!(
            matches!(refused, Err(EntraError::Token(TokenError::UnknownKey(_)))),
            "{refused:?}"
        );
    }
    assert_eq!(
        server.hits(),
        1,
        "unknown kids within the interval fetch nothing"
    );

    // A JWKS endpoint that is down is an error about the keys, not a verdict on the token.
    let down = KeyCache::new("http://127.0.0.1:9/keys", Duration::ZERO).expect("cache");
    assert!(matches!(
        down.validate(&signer.tok(&claims()), &expect(), NOW).await,
        Err(EntraError::Keys { .. })
    ));
}

#[test]
fn directory_admins_are_told_apart_by_their_roles() {
    let signer = Signer::new("key-1").expect("rsa key");
    let keys = keys(&[&signer]);
    let user_with = |wids: Value| {
        validate(&signer.tok(&with(&[("wids", wids)])), &keys, &expect(), NOW).expect("valid")
    };
    // Global Administrator, beside the "User" role every member has.
    let global = json!([
        "62e90394-69f5-4237-9190-012177145e10",
        "b79fbf4d-3ef9-4689-8143-76b194e85509"
    ]);
    assert!(user_with(global).may_link_tenant());
    assert!(user_with(json!(["9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"])).may_link_tenant());
    let member = json!(["b79fbf4d-3ef9-4689-8143-76b194e85509", "not-a-guid"]);
    assert!(!user_with(member).may_link_tenant());
    assert!(!user_with(Value::Null).may_link_tenant());
}
