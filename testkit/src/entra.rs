//! A stand-in for Entra ID's token issuing: an RSA signing key with a `kid`, tokens signed
//! with it the way Entra signs v2 access tokens (RS256), and a JWKS endpoint on 127.0.0.1
//! whose keys a test can rotate and whose requests it can count. The server under test is
//! pointed at the endpoint and validates the tokens exactly as it would Microsoft's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// An RSA-2048 signing key published under `kid`.
pub struct Signer {
    pair: RsaKeyPair,
    /// The key id tokens name in their header (may be changed to sign under made-up ids).
    pub kid: String,
}

impl Signer {
    /// A fresh key.
    pub fn new(kid: &str) -> Result<Signer> {
        Ok(Signer {
            pair: RsaKeyPair::generate(KeySize::Rsa2048).context("generating an RSA key")?,
            kid: kid.to_owned(),
        })
    }

    /// The public key as a JWK, as Entra publishes it.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A compact JWS of `claims` under any `header` (to test refusals of odd headers).
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String> {
        let signed = format!("{}.{}", encode(header), encode(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// A token of `claims` with the header Entra uses.
    pub fn token(&self, claims: &Value) -> Result<String> {
        self.sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// A valid access token for `client_id` of person `oid` in tenant `tid`, now.
    pub fn access_token(
        &self,
        tid: &str,
        oid: &str,
        address: &str,
        client_id: &str,
    ) -> Result<String> {
        self.token(&access_token_claims_now(tid, oid, address, client_id))
    }
}

/// [`access_token_claims`] valid for an hour around the current time.
pub fn access_token_claims_now(tid: &str, oid: &str, address: &str, client_id: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    access_token_claims(tid, oid, address, client_id, now)
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The claims of an Entra ID v2 access token for `client_id` with scope `access_as_user`,
/// of person `oid` in tenant `tid`, valid for an hour around `now` (Unix seconds).
pub fn access_token_claims(
    tid: &str,
    oid: &str,
    address: &str,
    client_id: &str,
    now: i64,
) -> Value {
    json!({
        "ver": "2.0",
        "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
        "aud": client_id,
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "scp": "access_as_user",
        "tid": tid, "oid": oid,
        "preferred_username": address,
    })
}

/// The JWKS document of `signers`.
pub fn jwks_of(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

/// A JWKS endpoint on 127.0.0.1 serving `/keys`; it stops with the runtime.
pub struct JwksServer {
    /// `http://127.0.0.1:PORT/keys`.
    pub url: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicU64>,
}

impl JwksServer {
    /// Serves the keys of `signers`.
    pub async fn start(signers: &[&Signer]) -> Result<JwksServer> {
        let jwks = Arc::new(Mutex::new(jwks_of(signers)));
        let hits = Arc::new(AtomicU64::new(0));
        let (served, counted) = (jwks.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/keys",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().map(|v| v.to_string()).unwrap_or_default();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/keys", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(JwksServer { url, jwks, hits })
    }

    /// Publishes the keys of `signers` instead (Entra rolling its keys over).
    pub fn rotate_to(&self, signers: &[&Signer]) {
        if let Ok(mut jwks) = self.jwks.lock() {
            *jwks = jwks_of(signers);
        }
    }

    /// How many times the keys were fetched.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}
