//! Recipients' endpoints: the share page `GET /d/{token}` and file bytes
//! `GET /d/{token}/f/{file}`. No account: the token is the credential.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tokio_stream::wrappers::ReceiverStream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{AppError, ErrorBody};
use super::page;
use super::range::{RangeDecision, decide};
use crate::download::{self, DownloadError};
use crate::state::AppState;

/// Routes recipients use.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share_page))
        .routes(routes!(download_file))
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
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
}

fn page_error(e: DownloadError) -> Response {
    let (status, text) = match e {
        DownloadError::NotFound => (StatusCode::NOT_FOUND, "This link does not exist."),
        DownloadError::Gone => (
            StatusCode::GONE,
            "This link has expired or was revoked. Ask the sender for a new one.",
        ),
        other => return with_recipient_headers(AppError::from(other).into_response()),
    };
    with_recipient_headers((status, Html(page::message(text))).into_response())
}

fn with_recipient_headers(mut response: Response) -> Response {
    recipient_headers(response.headers_mut());
    response
}

/// The recipients' page: the share's files with sizes, BLAKE3 and a download button each.
/// Opening it is not a download (mail scanners prefetch links).
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
async fn share_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let share = match download::resolve_share(&state, &token).await {
        Ok(share) => share,
        Err(e) => return page_error(e),
    };
    match download::share_files(&state, &share).await {
        Ok(files) => {
            with_recipient_headers(Html(page::share(&token, &share, &files)).into_response())
        }
        Err(e) => page_error(e),
    }
}

/// One file's bytes, decrypted and verified as they stream. Single byte ranges (`Range`,
/// `If-Range` against the `ETag`) are honoured; other ranges are ignored and the whole file
/// is sent.
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
        (status = 410, description = "The link expired or was revoked (a page saying so)",
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
    State(state): State<AppState>,
    Path((token, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    // A malformed file id is refused before the link is looked up: whatever the link's state,
    // such a URL names nothing (404, never the link's 410).
    let file_id = Uuid::parse_str(&file).map_err(|_| page_error(DownloadError::NotFound))?;
    let share = download::resolve_share(&state, &token)
        .await
        .map_err(page_error)?;
    let open = download::open_file(&state, &share, file_id)
        .await
        .map_err(page_error)?;
    let size = open.file.size;
    let etag = format!("\"{}\"", open.file.blake3);
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let decision = decide(
        header_text(header::RANGE),
        header_text(header::IF_RANGE),
        &etag,
        size,
    );

    let mut response_headers = HeaderMap::new();
    recipient_headers(&mut response_headers);
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&page::content_disposition(&open.file.name)) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    let (status, start, end) = match decision {
        RangeDecision::Unsatisfiable => {
            let error = AppError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "the range is outside the file",
            )
            .with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}"))
                    .map_err(|e| AppError::internal(e).into_response())?,
            );
            return Err(with_recipient_headers(error.into_response()));
        }
        RangeDecision::Partial { start, end } => {
            let range = format!("bytes {start}-{end}/{size}");
            response_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&range).map_err(|e| AppError::internal(e).into_response())?,
            );
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        RangeDecision::Full if size == 0 => {
            response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return Ok((StatusCode::OK, response_headers, Body::empty()).into_response());
        }
        RangeDecision::Full => (StatusCode::OK, 0, size - 1),
    };
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
    let chunks = download::stream_range(&state, open, start, end)
        .await
        .map_err(page_error)?;
    Ok((
        status,
        response_headers,
        Body::from_stream(ReceiverStream::new(chunks)),
    )
        .into_response())
}
