//! Tokens signed here with a freshly generated RSA key, the way Entra signs them, and every
//! way a token must be refused.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_800_000_000;
const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID: &str = "00000000-0000-0000-66f3-3332eca7ea81";
const CLIENT_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

struct Signer {
    pair: RsaKeyPair,
    kid: String,
}

impl Signer {
    fn new(kid: &str) -> Signer {
        Signer {
            pair: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key"),
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!("{}.{}", encode(header), encode(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims() -> Value {
    json!({
        "ver": "2.0",
        "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
        "aud": CLIENT_ID,
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
        "scp": "openid access_as_user",
        "tid": TID, "oid": OID,
        "preferred_username": "an.de.vries@ziekenhuis.example",
    })
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
    let signer = Signer::new("key-1");
    let user = validate(&signer.token(&claims()), &keys(&[&signer]), &expect(), NOW);
    assert_eq!(
        user,
        Ok(EntraUser {
            tenant: Uuid::parse_str(TID).expect("tid"),
            object_id: Uuid::parse_str(OID).expect("oid"),
            address: Some("an.de.vries@ziekenhuis.example".into()),
        })
    );
    // The application ID URI is an accepted audience too; clocks may be two minutes apart.
    let uri = with(&[("aud", json!(format!("api://files.example.eu/{CLIENT_ID}")))]);
    assert!(validate(&signer.token(&uri), &keys(&[&signer]), &expect(), NOW).is_ok());
    let just_expired = with(&[("exp", json!(NOW - 60))]);
    assert!(
        validate(
            &signer.token(&just_expired),
            &keys(&[&signer]),
            &expect(),
            NOW
        )
        .is_ok()
    );
    assert_eq!(key_id(&signer.token(&claims())).as_deref(), Some("key-1"));
}

#[test]
fn claims_that_do_not_hold_are_refused() {
    let signer = Signer::new("key-1");
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
            validate(&signer.token(&claims), &keys, &expect(), NOW),
            Err(refused),
            "{claims}"
        );
    }
}

#[test]
fn forged_and_malformed_tokens_are_refused() {
    let signer = Signer::new("key-1");
    let keys = keys(&[&signer]);
    let good = signer.token(&claims());

    // A key the JWKS does not hold, and a key that claims the kid of one it does.
    let stranger = Signer::new("key-2");
    assert_eq!(
        validate(&stranger.token(&claims()), &keys, &expect(), NOW),
        Err(TokenError::UnknownKey("key-2".into()))
    );
    let impostor = Signer::new("key-1");
    assert_eq!(
        validate(&impostor.token(&claims()), &keys, &expect(), NOW),
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
    let signer = Signer::new("key-1");
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

/// A JWKS endpoint on 127.0.0.1 whose keys the test can rotate, counting its requests.
struct JwksServer {
    url: String,
    jwks: std::sync::Arc<std::sync::Mutex<Value>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl JwksServer {
    async fn start(signers: &[&Signer]) -> JwksServer {
        use std::sync::atomic::Ordering;
        let jwks = std::sync::Arc::new(std::sync::Mutex::new(jwks_of(signers)));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (served, counted) = (jwks.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/keys",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().map(|v| v.to_string()).unwrap_or_default();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer { url, jwks, hits }
    }

    fn rotate_to(&self, signers: &[&Signer]) {
        *self.jwks.lock().expect("jwks") = jwks_of(signers);
    }

    fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn jwks_of(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

#[tokio::test]
async fn keys_are_fetched_once_and_again_only_for_a_new_kid() {
    use super::jwks::KeyCache;
    use std::time::Duration;

    let (old, new) = (Signer::new("key-1"), Signer::new("key-2"));
    let server = JwksServer::start(&[&old]).await;
    let cache = KeyCache::new(&server.url, Duration::ZERO).expect("cache");
    for _ in 0..20 {
        let user = cache.validate(&old.token(&claims()), &expect(), NOW).await;
        assert!(user.is_ok(), "{user:?}");
    }
    assert_eq!(server.hits(), 1, "one fetch for 20 tokens");

    // Entra rolls its keys over: a token with the new kid makes the cache fetch again.
    server.rotate_to(&[&old, &new]);
    assert!(
        cache
            .validate(&new.token(&claims()), &expect(), NOW)
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 2);
    // A refused token does not make the keys forgotten.
    let wrong_audience = with(&[("aud", json!("another-app"))]);
    assert!(matches!(
        cache
            .validate(&old.token(&wrong_audience), &expect(), NOW)
            .await,
        Err(super::jwks::EntraError::Token(TokenError::Audience))
    ));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn made_up_kids_cost_one_fetch_per_interval() {
    use super::jwks::{EntraError, KeyCache};
    use std::time::Duration;

    let signer = Signer::new("key-1");
    let server = JwksServer::start(&[&signer]).await;
    let cache = KeyCache::new(&server.url, Duration::from_secs(3600)).expect("cache");
    assert!(
        cache
            .validate(&signer.token(&claims()), &expect(), NOW)
            .await
            .is_ok()
    );
    // One stranger's key signs tokens under many made-up kids.
    let mut stranger = Signer::new("made-up");
    for n in 0..20 {
        stranger.kid = format!("made-up-{n}");
        let refused = cache
            .validate(&stranger.token(&claims()), &expect(), NOW)
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
        down.validate(&signer.token(&claims()), &expect(), NOW)
            .await,
        Err(EntraError::Keys { .. })
    ));
}
