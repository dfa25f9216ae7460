//! Sign-in from the Outlook add-in: an Entra ID token (signed here, its keys served on
//! 127.0.0.1 as Entra serves them) makes a person of a linked Microsoft 365 organisation a
//! sender who owns what they upload and share and is the audit actor; everything else is
//! refused with 401, and linking an organisation needs one of its directory admins.

use anyhow::{Context as _, Result, ensure};
use ferry_testkit::entra::{JwksServer, Signer, access_token_claims_now};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Backend, ShareOptions, TestServer, error_code};

const CLIENT_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const HOSPITAL: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const GLOBAL_ADMIN_ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

/// A server with Entra sign-in configured against a local JWKS endpoint.
struct Bed {
    server: TestServer,
    jwks: JwksServer,
    signer: Signer,
}

impl Bed {
    async fn start(backend: Backend) -> Result<Bed> {
        let signer = Signer::new("key-1")?;
        let jwks = JwksServer::start(&[&signer]).await?;
        let server = TestServer::start_with_env(
            match backend {
                Backend::Sqlite => crate::harness::Stack::SqliteDisk,
                Backend::Postgres => crate::harness::Stack::PostgresDisk,
            },
            &[
                ("FERRY_ENTRA_CLIENT_ID", CLIENT_ID),
                ("FERRY_ENTRA_JWKS_URL", &jwks.url),
            ],
        )
        .await?;
        Ok(Bed {
            server,
            jwks,
            signer,
        })
    }

    /// A token of person `oid` of organisation `tid`, valid now.
    fn token(&self, tid: &str, oid: &str, address: &str) -> Result<String> {
        self.signer.token(&self.claims(tid, oid, address))
    }

    fn claims(&self, tid: &str, oid: &str, address: &str) -> Value {
        access_token_claims_now(tid, oid, address, CLIENT_ID)
    }

    /// A token of a Global Administrator of `tid`.
    fn directory_admin_token(&self, tid: &str) -> Result<String> {
        let mut claims = self.claims(tid, &Uuid::new_v4().to_string(), "it@hospital.example");
        claims["wids"] = json!([GLOBAL_ADMIN_ROLE]);
        self.signer.token(&claims)
    }

    /// `POST /api/v1/admin/entra-links` with `key`, proving with `proof`.
    async fn link(&self, key: &str, proof: &str) -> Result<reqwest::Response> {
        Ok(self
            .server
            .client
            .post(format!("{}/api/v1/admin/entra-links", self.server.base))
            .bearer_auth(key)
            .json(&json!({ "directory_admin_token": proof }))
            .send()
            .await?)
    }

    async fn get(&self, bearer: &str, path: &str) -> Result<reqwest::Response> {
        Ok(self
            .server
            .client
            .get(format!("{}{path}", self.server.base))
            .bearer_auth(bearer)
            .send()
            .await?)
    }
}

/// An organisation linked by its directory admin: its people upload and share as themselves,
/// see only their own, and the audit log names them.
async fn people_of_a_linked_organisation_send_as_themselves(backend: Backend) -> Result<()> {
    let bed = Bed::start(backend).await?;
    let server = &bed.server;
    let an = bed.token(HOSPITAL, &Uuid::new_v4().to_string(), "an@hospital.example")?;

    // Before the link, the person is refused with a code the pane can explain.
    let refused = bed
        .get(&an, "/api/v1/files/00000000-0000-0000-0000-000000000000")
        .await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await?, "entra_tenant_not_linked");

    let linked = bed
        .link(&server.key, &bed.directory_admin_token(HOSPITAL)?)
        .await?;
    assert_eq!(linked.status(), StatusCode::CREATED);
    let body: Value = linked.json().await?;
    assert_eq!(body["entra_tenant_id"], HOSPITAL);
    let again = bed
        .link(&server.key, &bed.directory_admin_token(HOSPITAL)?)
        .await?;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "linking twice changes nothing"
    );
    let links: Value = bed
        .get(&server.key, "/api/v1/admin/entra-links")
        .await?
        .json()
        .await?;
    assert_eq!(links["links"][0]["entra_tenant_id"], HOSPITAL);
    assert_eq!(links["links"].as_array().map(Vec::len), Some(1));

    // The person uploads and shares with their token alone.
    let content = crate::harness::random_bytes(200_000, 15);
    let file = server.upload_as(&an, &content, "scan.pdf").await?;
    let share = server
        .share_as(
            &an,
            &[file],
            &["gp@praktijk.example"],
            ShareOptions::default(),
        )
        .await?;
    let share_id = share["id"].as_str().context("share id")?;

    // They own both: a colleague from the same organisation sees neither; the admin sees both.
    let colleague = bed.token(HOSPITAL, &Uuid::new_v4().to_string(), "bo@hospital.example")?;
    let theirs = bed
        .get(&colleague, &format!("/api/v1/shares/{share_id}"))
        .await?;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let theirs = bed
        .get(&colleague, &format!("/api/v1/files/{file}"))
        .await?;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let mine = bed.get(&an, &format!("/api/v1/files/{file}")).await?;
    assert_eq!(mine.status(), StatusCode::OK);
    let view = server.share_view(share_id).await?;
    let owner: Uuid = view["created_by"].as_str().context("created_by")?.parse()?;
    let files: Value = bed
        .get(&server.key, "/api/v1/admin/files")
        .await?
        .json()
        .await?;
    assert_eq!(files["files"][0]["owner_id"], owner.to_string());

    // A person cannot do what needs an admin.
    let policy = bed.get(&an, "/api/v1/admin/policy").await?;
    assert_eq!(policy.status(), StatusCode::FORBIDDEN);

    // The audit log: the link with its proof, the person's first sign-in (once, however many
    // requests), and their upload and share under `person:<id>`.
    let events = server.audit_events("").await?;
    let actor = format!("person:{owner}");
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["kind"] == kind).collect() };
    let link = of("entra.linked");
    ensure!(link.len() == 1, "one link event: {link:?}");
    assert_eq!(link[0]["details"]["entra_tenant"], HOSPITAL);
    assert!(link[0]["details"]["proof"]["directory_admin"].is_string());
    let added = of("person.added");
    ensure!(added.len() == 2, "An and Bo each added once: {added:?}");
    let an_added = added
        .iter()
        .find(|e| e["actor"] == actor)
        .context("An's person.added")?;
    assert_eq!(an_added["details"]["address"], "an@hospital.example");
    assert_eq!(an_added["details"]["entra_tenant"], HOSPITAL);
    for kind in ["upload.created", "upload.completed", "share.created"] {
        let event = of(kind);
        ensure!(event.len() == 1, "{kind}: {event:?}");
        assert_eq!(event[0]["actor"], actor, "{kind}");
    }

    // Twenty requests, one fetch of the signing keys.
    assert_eq!(bed.jwks.hits(), 1);
    Ok(())
}

/// Tokens that are not good enough are refused with 401 and the API's error shape.
async fn every_other_token_is_refused(backend: Backend) -> Result<()> {
    let bed = Bed::start(backend).await?;
    let server = &bed.server;
    ensure!(
        bed.link(&server.key, &bed.directory_admin_token(HOSPITAL)?)
            .await?
            .status()
            == StatusCode::CREATED
    );
    let oid = Uuid::new_v4().to_string();
    let good = bed.claims(HOSPITAL, &oid, "an@hospital.example");
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stranger = Signer::new("key-1")?; // same kid, another key
    let cases = [
        (
            "another audience",
            bed.signer.token(&with("aud", json!("another-app")))?,
        ),
        (
            "expired",
            bed.signer.token(&with("exp", json!(now - 3600)))?,
        ),
        (
            "without the scope",
            bed.signer.token(&with("scp", json!("User.Read")))?,
        ),
        (
            "from another issuer",
            bed.signer
                .token(&with("iss", json!("https://evil.example/v2.0")))?,
        ),
        ("signed by someone else", stranger.token(&good)?),
        (
            "not valid yet",
            bed.signer.token(&with("nbf", json!(now + 3600)))?,
        ),
        ("under an unknown kid", Signer::new("key-9")?.token(&good)?),
        (
            "unsigned (alg none)",
            unsigned(&json!({"alg": "none", "kid": "key-1"}), &good),
        ),
        (
            "HS256",
            format!(
                "{}AAAA",
                unsigned(&json!({"alg": "HS256", "kid": "key-1"}), &good)
            ),
        ),
        ("not a JWT", "a.b.c".to_owned()),
    ];
    for (what, token) in cases {
        let response = bed.get(&token, "/api/v1/admin/entra-links").await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error_code(response).await?, "unauthorized", "{what}");
    }
    // The good one passes (and is a sender: 403 on an admin route, not 401).
    let response = bed
        .get(&bed.signer.token(&good)?, "/api/v1/admin/entra-links")
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    Ok(())
}

/// `header.claims.` with no signature (base64url, as a JWS).
fn unsigned(header: &Value, claims: &Value) -> String {
    use base64::Engine as _;
    let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", encode(header), encode(claims))
}

/// Only a directory admin of an organisation links it, to one Ferry tenant; an unlinked
/// organisation's people are refused at once.
async fn linking_needs_the_organisations_admin(backend: Backend) -> Result<()> {
    let bed = Bed::start(backend).await?;
    let server = &bed.server;
    let member = bed.token(HOSPITAL, &Uuid::new_v4().to_string(), "an@hospital.example")?;

    let refused = bed.link(&server.key, &member).await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await?, "not_directory_admin");
    let sender = server.sender_key().await?;
    let refused = bed
        .link(&sender, &bed.directory_admin_token(HOSPITAL)?)
        .await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await?, "forbidden");

    assert_eq!(
        bed.link(&server.key, &bed.directory_admin_token(HOSPITAL)?)
            .await?
            .status(),
        StatusCode::CREATED
    );
    // Another Ferry tenant cannot take the organisation over, even with its admin's token.
    let other = server.other_tenant_key().await?;
    let taken = bed
        .link(&other, &bed.directory_admin_token(HOSPITAL)?)
        .await?;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let elsewhere = server
        .client
        .delete(format!(
            "{}/api/v1/admin/entra-links/{HOSPITAL}",
            server.base
        ))
        .bearer_auth(&other)
        .send()
        .await?;
    assert_eq!(
        elsewhere.status(),
        StatusCode::NOT_FOUND,
        "not theirs to unlink"
    );

    let works = bed.get(&member, "/api/v1/admin/entra-links").await?;
    assert_eq!(
        works.status(),
        StatusCode::FORBIDDEN,
        "signed in, as a sender"
    );
    let unlinked = server
        .client
        .delete(format!(
            "{}/api/v1/admin/entra-links/{HOSPITAL}",
            server.base
        ))
        .bearer_auth(&server.key)
        .send()
        .await?;
    assert_eq!(unlinked.status(), StatusCode::NO_CONTENT);
    let refused = bed.get(&member, "/api/v1/admin/entra-links").await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await?, "entra_tenant_not_linked");
    let kinds: Vec<Value> = server
        .audit_events("")
        .await?
        .into_iter()
        .map(|e| e["kind"].clone())
        .filter(|k| k.as_str().is_some_and(|k| k.starts_with("entra.")))
        .collect();
    assert_eq!(kinds, [json!("entra.linked"), json!("entra.unlinked")]);
    Ok(())
}

#[tokio::test]
async fn people_of_a_linked_organisation_send_as_themselves_sqlite() -> Result<()> {
    people_of_a_linked_organisation_send_as_themselves(Backend::Sqlite).await
}

#[tokio::test]
async fn people_of_a_linked_organisation_send_as_themselves_postgres() -> Result<()> {
    people_of_a_linked_organisation_send_as_themselves(Backend::Postgres).await
}

#[tokio::test]
async fn every_other_token_is_refused_sqlite() -> Result<()> {
    every_other_token_is_refused(Backend::Sqlite).await
}

#[tokio::test]
async fn linking_needs_the_organisations_admin_sqlite() -> Result<()> {
    linking_needs_the_organisations_admin(Backend::Sqlite).await
}

#[tokio::test]
async fn linking_needs_the_organisations_admin_postgres() -> Result<()> {
    linking_needs_the_organisations_admin(Backend::Postgres).await
}

/// Without `FERRY_ENTRA_CLIENT_ID`, a token is just a wrong credential.
#[tokio::test]
async fn without_entra_configured_a_token_is_refused() -> Result<()> {
    let signer = Signer::new("key-1")?;
    let server = TestServer::start().await?;
    let token = signer.access_token(
        HOSPITAL,
        &Uuid::new_v4().to_string(),
        "an@hospital.example",
        CLIENT_ID,
    )?;
    let response = server
        .client
        .get(format!("{}/api/v1/shares/{}", server.base, Uuid::new_v4()))
        .bearer_auth(token)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await?, "unauthorized");
    Ok(())
}
