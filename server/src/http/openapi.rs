//! The OpenAPI 3.1 document of Ferry's HTTP API, generated from the handlers themselves with
//! `utoipa` and served at `GET /api/openapi.json`. Clients and the schemathesis test
//! (`tests/tests/schemathesis.rs`) read it, so it must say what the server really does.
//!
//! # How an endpoint gets into the document (every endpoint but tus follows this)
//!
//! 1. Annotate the handler with `#[utoipa::path(...)]`: the method, the path in axum's
//!    syntax (`/api/v1/shares/{id}`), a `tag` (one per route group, listed on [`ApiDoc`]),
//!    `security(("api_key" = []))` when it takes a [`Caller`](crate::auth::Caller), its
//!    `params`, its `request_body`, and **every status it can really answer**. Error
//!    statuses carry `body = ErrorBody` (see [`super::error`]): 401 on every keyed endpoint,
//!    503 wherever the database or store is touched, 400/413/415/422 wherever a JSON body is
//!    read through `ApiJson`. Recipient pages answer 404/410 with `text/html`. A body that
//!    is not JSON names its media type (`content_type = "application/x-ndjson"`,
//!    `content(("application/octet-stream"))` for raw bytes). Where a handler may answer a
//!    status that needs a header, list it (`headers(("Content-Range" = String))`).
//! 2. Derive `ToSchema` on its request and response bodies. Keep `#[serde(deny_unknown_fields)]`
//!    on request bodies the server refuses extra fields in: the schema then says
//!    `additionalProperties: false`, so fuzzers expect the 422. Bound fields with
//!    `#[schema(minimum = …, max_items = …)]` where the handler enforces a limit.
//! 3. Register it in its group's `router()`, which returns an
//!    [`OpenApiRouter<AppState>`](utoipa_axum::router::OpenApiRouter), with
//!    `.routes(routes!(handler))`: one `routes!` per path, naming every method of that path
//!    (`routes!(get_share, revoke_share)`). This both routes and documents the handler; never
//!    use `.route(…)` outside `tus.rs`, which routes without documenting.
//! 4. Add the operation to `DOCUMENTED` in `server/tests/it/openapi.rs`.
//! 5. If it takes the id of something a tenant owns (a share, a file), offer a real one to
//!    the fuzzer: a `[[operations]]` entry in `config()` of `tests/tests/schemathesis.rs`,
//!    or random ids only ever reach its 404.
//!
//! That test fails when the served document and `DOCUMENTED` differ, when a documented path
//! is not routed, or when an `http/` module other than `tus.rs` calls `.route(`; the
//! schemathesis test then fuzzes every documented operation against the real binary and fails
//! on a 5xx or on a response the document does not describe.
//!
//! tus (`/files`, `/files/{id}`) is left out on purpose: its contract is the tus 1.0 protocol
//! (headers, not JSON bodies), which real tus clients test end to end.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Name of the bearer API key security scheme; handlers say `security(("api_key" = []))`
/// (utoipa takes only a literal there).
pub const API_KEY: &str = "api_key";
/// Name of the scheme of `GET /metrics` for scrapers beyond loopback.
pub const METRICS_TOKEN: &str = "metrics_token";

/// The document's frame: info, tags and the security scheme. Paths and schemas come from the
/// route groups' `routes!` registrations (see [`super::api`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        description = "Send large files by link: resumable encrypted uploads (tus 1.0 at \
                       `/files`, not described here), shares with tokenized links, and the \
                       recipients' pages and bytes. Every error body is \
                       `{\"error\": code, \"message\": text}`.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    modifiers(&BearerApiKey),
    tags(
        (name = "files", description = "Senders' view of their uploads"),
        (name = "shares", description = "Tokenized links over complete files"),
        (name = "admin", description = "Tenant administration (admin keys only)"),
        (name = "recipients", description = "What a link's holder sees: no key, the token is \
                                            the credential"),
        (name = "probes", description = "Liveness, readiness and metrics"),
        (name = "addin", description = "The Outlook add-in's manifest and files (no key)"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the `Authorization: Bearer fk_…` scheme every sender and admin endpoint uses.
struct BearerApiKey;

impl Modify for BearerApiKey {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("fk_<selector>_<secret>")
                    .description(Some(
                        "A tenant API key from `ferry tenant create` or `ferry apikey create` \
                         (admin or sender role), sent as `Authorization: Bearer fk_…`; or, \
                         from the Outlook add-in, an Entra ID access token for Ferry's app \
                         registration (a person of a linked Microsoft 365 organisation, \
                         acting as a sender).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`FERRY_METRICS_TOKEN`, for a scraper that is not on this host's \
                         loopback.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The finished document, shared by every request for it.
#[derive(Clone)]
pub struct ServedDocument(pub Arc<Document>);

/// The route serving the document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_openapi))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every endpoint but tus",
         body = Object, content_type = "application/json"),
    )
)]
async fn get_openapi(Extension(document): Extension<ServedDocument>) -> Response {
    Json(document.0.as_ref()).into_response()
}
