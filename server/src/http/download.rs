//! Recipients' endpoints: the share page `GET /d/{token}` and file bytes
//! `GET /d/{token}/f/{file}`. No account: the token is the credential.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use super::guard::TokenGuard;
use super::page::{self, Refusal};
use super::path::path_id;
use super::range::{RangeDecision, decide};
use crate::download::{self, DownloadError, Visitor};
use crate::i18n::Locale;
use crate::state::AppState;

/// Routes recipients use, behind `guard`: a client out of failed lookups gets 429 before
/// its token reaches the database.
pub fn router(guard: TokenGuard) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share_page))
        .routes(routes!(download_file))
        .routes(routes!(download_all))
        .route_layer(middleware::from_fn_with_state(guard, guard_tokens))
}

/// Admits a recipient request against its client's budget of failed lookups, and records
/// the answer against the budget (headers only: a download's body streams on unguarded).
async fn guard_tokens(
    State(guard): State<TokenGuard>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = match guard.admit(peer.ip(), request.headers()) {
        Ok(client) => client,
        Err(refused) => return with_recipient_headers(refused.into_response()),
    };
    request.extensions_mut().insert(ClientIp(client));
    let response = next.run(request).await;
    guard.record_outcome(client, response.status());
    response
}

/// Headers every recipient response carries: the token must not leak through referrers,
/// caches or sniffing.
fn recipient_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(policy) = HeaderValue::from_str(&page::CSP) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
}

/// The client's address as the guard resolved it (the peer, or behind a trusted proxy the
/// address it forwarded for).
#[derive(Clone, Copy)]
struct ClientIp(std::net::IpAddr);

/// The recipient's address and user agent, for the audit log.
struct RecipientInfo(Visitor);

impl<S: Send + Sync> FromRequestParts<S> for RecipientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = match parts.extensions.get::<ClientIp>() {
            Some(ClientIp(ip)) => Some(*ip),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        };
        let user_agent = parts.headers.get(header::USER_AGENT).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(512)
                .collect()
        });
        Ok(RecipientInfo(Visitor { ip, user_agent }))
    }
}

/// The page for a link or file that cannot be served (404 unknown, 410 expired, revoked or
/// exhausted), in the recipient's language and, for a genuine link, headed by its tenant's
/// name and logo; anything else is the API's JSON error.
async fn refuse(state: &AppState, token: &str, locale: Locale, e: DownloadError) -> Response {
    let (status, why) = match e {
        DownloadError::NotFound => (StatusCode::NOT_FOUND, Refusal::Unknown),
        DownloadError::Gone { revoked: false } => (StatusCode::GONE, Refusal::Expired),
        DownloadError::Gone { revoked: true } => (StatusCode::GONE, Refusal::Revoked),
        DownloadError::LimitReached => (StatusCode::GONE, Refusal::Exhausted),
        other => return with_recipient_headers(AppError::from(other).into_response()),
    };
    // An unknown link's page is the same whoever asks: no lookup that could tell it apart.
    let from = match why {
        Refusal::Unknown => None,
        _ => download::sender_of_token(state, token).await,
    };
    with_recipient_headers((status, Html(page::refusal(locale, why, from))).into_response())
}

/// `result`, or the page refusing it.
async fn or_refuse<T>(
    result: Result<T, DownloadError>,
    state: &AppState,
    token: &str,
    locale: Locale,
) -> Result<T, Response> {
    match result {
        Ok(value) => Ok(value),
        Err(e) => Err(refuse(state, token, locale, e).await),
    }
}

/// The language a recipient's request asks for: `?lang=` (the page's switch), else
/// `Accept-Language`, else English.
struct Language(Locale);

impl<S: Send + Sync> FromRequestParts<S> for Language {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let asked = parts
            .uri
            .query()
            .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("lang=")));
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Ok(Language(Locale::choose(asked, accept)))
    }
}

fn with_recipient_headers(mut response: Response) -> Response {
    recipient_headers(response.headers_mut());
    response
}

/// The share page. Opening it is recorded (`page.opened`) but never counts as a download:
/// mail scanners open links before people do.
#[utoipa::path(
    get,
    path = "/d/{token}",
    tag = "recipients",
    params(("token" = String, Path, description = "The link token (the last segment of the \
                                                   share's `url`)")),
    responses(
        (status = 200, description = "The share page", body = String,
         content_type = "text/html"),
        (status = 404, description = "No such link (a page saying so)", body = String,
         content_type = "text/html"),
        (status = 410, description = "The link expired or was revoked (a page saying so)",
         body = String, content_type = "text/html"),
        (status = 429, description = "Too many failed link lookups from this address; retry \
                                      after `Retry-After` seconds",
         content(("text/html"), (ErrorBody = "application/json")),
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database or store is unavailable; retry",
         body = ErrorBody),
    )
)]
async fn share_page(
    method: Method,
    State(state): State<AppState>,
    Path(token): Path<String>,
    RecipientInfo(visitor): RecipientInfo,
    Language(locale): Language,
) -> Response {
    let record_visit = method != Method::HEAD;
    let opened = match download::open_page(&state, &token, &visitor, record_visit).await {
        Ok(opened) => opened,
        Err(e) => return refuse(&state, &token, locale, e).await,
    };
    let html = page::share(locale, &token, &opened, time::OffsetDateTime::now_utc());
    let mut response = with_recipient_headers(Html(html).into_response());
    // The page's language follows Accept-Language unless ?lang= chose it.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    response
}

/// File bytes. Each response reserves the bytes of its range against the policy's download
/// limit (N copies' worth; see [`download::begin_download`]) and gives back what it did not
/// send; a HEAD costs nothing. Every GET is recorded when it ends.
#[utoipa::path(
    get,
    path = "/d/{token}/f/{file}",
    tag = "recipients",
    params(
        ("token" = String, Path, description = "The link token"),
        ("file" = String, Path, format = Uuid, description = "A file id of the share"),
        ("Range" = Option<String>, Header, nullable = false, description = "One byte range, `bytes=a-b`, \
                                                          `bytes=a-` or `bytes=-n`"),
        ("If-Range" = Option<String>, Header, nullable = false, description = "The `ETag`: send the range only \
                                                             if the file is still this one"),
    ),
    responses(
        (status = 200, description = "The whole file",
         content(("application/octet-stream")),
         headers(
             ("ETag" = String, description = "`\"<hex BLAKE3>\"`"),
             ("Accept-Ranges" = String, description = "`bytes`"),
             ("Content-Disposition" = String,
              description = "`attachment` with the file's name, safely encoded"),
         )),
        (status = 206, description = "The requested range",
         content(("application/octet-stream")),
         headers(
             ("Content-Range" = String, description = "`bytes a-b/size`"),
             ("ETag" = String, description = "`\"<hex BLAKE3>\"`"),
             ("Accept-Ranges" = String, description = "`bytes`"),
             ("Content-Disposition" = String,
              description = "`attachment` with the file's name, safely encoded"),
         )),
        (status = 404, description = "No such link, or no such file in it (a page saying so)",
         body = String, content_type = "text/html"),
        (status = 410, description = "The link expired or was revoked, or this file was downloaded as \
                                      often as the policy allows (a page saying so)",
         body = String, content_type = "text/html"),
        (status = 416, description = "The range starts beyond the file's end",
         body = ErrorBody,
         headers(("Content-Range" = String, description = "`bytes */size`"))),
        (status = 429, description = "Too many failed link lookups from this address; retry \
                                      after `Retry-After` seconds",
         content(("text/html"), (ErrorBody = "application/json")),
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database or store is unavailable; retry",
         body = ErrorBody),
    )
)]
async fn download_file(
    method: Method,
    State(state): State<AppState>,
    Path((token, file)): Path<(String, String)>,
    RecipientInfo(visitor): RecipientInfo,
    Language(locale): Language,
    headers: HeaderMap,
) -> Result<Response, Response> {
    // A malformed file id is refused before the link is looked up: whatever the link's state,
    // such a URL names nothing (404, never the link's 410).
    let file_id = or_refuse(
        path_id(&file).map_err(|_| DownloadError::NotFound),
        &state,
        &token,
        locale,
    )
    .await?;
    let share = or_refuse(
        download::resolve_share(&state, &token).await,
        &state,
        &token,
        locale,
    )
    .await?;
    let open = or_refuse(
        download::open_file(&state, &share, file_id).await,
        &state,
        &token,
        locale,
    )
    .await?;
    let etag = format!("\"{}\"", open.file.blake3);
    let head = ResponseHead::decide(
        &headers,
        &etag,
        open.file.size,
        "application/octet-stream",
        &page::content_disposition(&open.file.name),
    )
    .map_err(|e| with_recipient_headers(e.into_response()))?;
    if method == Method::HEAD {
        // What a GET would answer, without a byte of the body: free, unrecorded (mail
        // scanners send HEAD to every link).
        return Ok((head.status, head.headers).into_response());
    }
    let body = or_refuse(
        download::begin_download(&state, share, open, head.range, visitor).await,
        &state,
        &token,
        locale,
    )
    .await?;
    Ok((head.status, head.headers, Body::from_stream(body)).into_response())
}

/// Every file of the share as one ZIP64 (stored, not compressed), with a length, an `ETag` and
/// byte ranges like a single file, so `curl -C -` or a browser resumes it. Counts toward each
/// file's download limit as the single files do: a response reserves, per file, the bytes of
/// it its range covers; header bytes and a HEAD cost nothing.
#[utoipa::path(
    get,
    path = "/d/{token}/all.zip",
    tag = "recipients",
    params(
        ("token" = String, Path, description = "The link token"),
        ("Range" = Option<String>, Header, nullable = false, description = "One byte range, `bytes=a-b`, \
                                                          `bytes=a-` or `bytes=-n`"),
        ("If-Range" = Option<String>, Header, nullable = false, description = "The `ETag`: send the range only \
                                                             if the archive is still this one"),
    ),
    responses(
        (status = 200, description = "The whole archive",
         content(("application/zip")),
         headers(
             ("ETag" = String, description = "`\"zip-<hex>\"`, the same for the same files"),
             ("Accept-Ranges" = String, description = "`bytes`"),
             ("Content-Disposition" = String, description = "`attachment`, a name for the archive"),
         )),
        (status = 206, description = "The requested range of the archive",
         content(("application/zip")),
         headers(
             ("Content-Range" = String, description = "`bytes a-b/size`"),
             ("ETag" = String, description = "`\"zip-<hex>\"`"),
             ("Accept-Ranges" = String, description = "`bytes`"),
             ("Content-Disposition" = String, description = "`attachment`, a name for the archive"),
         )),
        (status = 404, description = "No such link (a page saying so)",
         body = String, content_type = "text/html"),
        (status = 410, description = "The link expired or was revoked, or a file the range covers was \
                                      downloaded as often as the policy allows (a page saying so)",
         body = String, content_type = "text/html"),
        (status = 416, description = "The range starts beyond the archive's end",
         body = ErrorBody,
         headers(("Content-Range" = String, description = "`bytes */size`"))),
        (status = 429, description = "Too many failed link lookups from this address; retry \
                                      after `Retry-After` seconds",
         content(("text/html"), (ErrorBody = "application/json")),
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database or store is unavailable; retry",
         body = ErrorBody),
    )
)]
async fn download_all(
    method: Method,
    State(state): State<AppState>,
    Path(token): Path<String>,
    RecipientInfo(visitor): RecipientInfo,
    Language(locale): Language,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let share = or_refuse(
        download::resolve_share(&state, &token).await,
        &state,
        &token,
        locale,
    )
    .await?;
    let archive = or_refuse(
        download::open_archive(&state, &share).await,
        &state,
        &token,
        locale,
    )
    .await?;
    let name = format!("ferry-{}.zip", &share.id.simple().to_string()[..8]);
    let head = ResponseHead::decide(
        &headers,
        &archive.etag,
        archive.layout.len(),
        "application/zip",
        &page::content_disposition(&name),
    )
    .map_err(|e| with_recipient_headers(e.into_response()))?;
    if method == Method::HEAD {
        return Ok((head.status, head.headers).into_response());
    }
    // The archive is never empty (its end records at least), so there is always a range.
    let Some(range) = head.range else {
        return Err(refuse(&state, &token, locale, DownloadError::NotFound).await);
    };
    let body = or_refuse(
        download::begin_archive_download(&state, share, archive, range, visitor).await,
        &state,
        &token,
        locale,
    )
    .await?;
    Ok((head.status, head.headers, Body::from_stream(body)).into_response())
}

/// Status and headers of a byte response, and the range to send (`None`: the whole of an
/// empty representation).
struct ResponseHead {
    status: StatusCode,
    headers: HeaderMap,
    range: Option<(u64, u64)>,
}

impl ResponseHead {
    /// Decides `Range` / `If-Range` of `request` against a representation of `size` bytes
    /// tagged `etag`; a range outside it is the 416 error (send it with the recipient headers).
    fn decide(
        request: &HeaderMap,
        etag: &str,
        size: u64,
        content_type: &'static str,
        disposition: &str,
    ) -> Result<ResponseHead, AppError> {
        let text = |name| {
            request
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let decision = decide(text(header::RANGE), text(header::IF_RANGE), etag, size);
        let mut headers = HeaderMap::new();
        recipient_headers(&mut headers);
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(etag) {
            headers.insert(header::ETAG, value);
        }
        if let Ok(value) = HeaderValue::from_str(disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        let internal = AppError::internal;
        let (status, range) = match decision {
            RangeDecision::Unsatisfiable => {
                let error = AppError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    "the range is outside the file",
                )
                .with_header(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).map_err(internal)?,
                );
                return Err(error);
            }
            RangeDecision::Partial { start, end } => {
                let range = format!("bytes {start}-{end}/{size}");
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&range).map_err(internal)?,
                );
                (StatusCode::PARTIAL_CONTENT, Some((start, end)))
            }
            RangeDecision::Full if size == 0 => (StatusCode::OK, None),
            RangeDecision::Full => (StatusCode::OK, Some((0, size - 1))),
        };
        let length = range.map_or(0, |(start, end)| end - start + 1);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        Ok(ResponseHead {
            status,
            headers,
            range,
        })
    }
}
