//! tus 1.0 endpoints under `/files`: parse headers, call [`crate::tus`], answer in tus terms.

use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::options;
use time::OffsetDateTime;
use tower_http::set_header::SetResponseHeaderLayer;
use uuid::Uuid;

use super::error::AppError;
use super::path::path_id;
use crate::auth::Caller;
use crate::db::uploads::UploadState;
use crate::state::AppState;
use crate::tus::checksum::{ALGORITHMS, ExpectedChecksum};
use crate::tus::{self, CreateRequest, PatchOutcome, PatchRequest, TUS_EXTENSIONS, TUS_VERSION};

/// The media type tus requires on PATCH bodies.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// Routes of the tus protocol; every response carries `Tus-Resumable`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/files", options(options_files).post(create_upload))
        .route("/files/", options(options_files).post(create_upload))
        .route(
            "/files/{id}",
            options(options_files)
                .head(head_upload)
                .patch(patch_upload)
                .delete(delete_upload),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("tus-resumable"),
            HeaderValue::from_static(TUS_VERSION),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

async fn options_files(State(state): State<AppState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    headers.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(ALGORITHMS),
    );
    headers.insert(
        "tus-max-size",
        HeaderValue::from(tus::max_upload_len(&state)),
    );
    // The part size of uploads up to 625 GiB; larger ones learn theirs on creation and HEAD.
    insert_part_size(&state, &mut headers, Some(0));
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// `Ferry-Part-Size`: with a store that writes in parts, PATCH bodies of whole parts never
/// need a pending piece.
fn insert_part_size(state: &AppState, headers: &mut HeaderMap, length: Option<u64>) {
    let planned = length.unwrap_or_else(|| tus::max_upload_len(state));
    if let Some(size) = state.store.part_plaintext_len(planned) {
        headers.insert("ferry-part-size", HeaderValue::from(size));
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AppError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| AppError::bad_request(format!("{name} is not ASCII")))
        })
        .transpose()
}

fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, AppError> {
    text(headers, name)?
        .map(|t| {
            t.trim().parse::<u64>().map_err(|_| {
                AppError::bad_request(format!("{name} must be a non-negative integer"))
            })
        })
        .transpose()
}

fn require_tus_version(headers: &HeaderMap) -> Result<(), AppError> {
    match text(headers, "tus-resumable")? {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(AppError::new(
            StatusCode::PRECONDITION_FAILED,
            "unsupported_version",
            "Tus-Resumable: 1.0.0 is required",
        )
        .with_header(
            header::HeaderName::from_static("tus-version"),
            HeaderValue::from_static(TUS_VERSION),
        )),
    }
}

fn is_offset_stream(headers: &HeaderMap) -> Result<bool, AppError> {
    Ok(text(headers, "content-type")?.is_some_and(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case(OFFSET_OCTET_STREAM)
    }))
}

fn patch_request(headers: &HeaderMap, offset: u64) -> Result<PatchRequest, AppError> {
    let checksum = text(headers, "upload-checksum")?
        .map(ExpectedChecksum::parse)
        .transpose()
        .map_err(|e| AppError::bad_request(e.to_string()))?;
    Ok(PatchRequest {
        offset,
        length: number(headers, "upload-length")?,
        checksum,
        content_length: number(headers, "content-length")?,
    })
}

fn http_date(at: OffsetDateTime) -> HeaderValue {
    let system = SystemTime::from(at);
    HeaderValue::from_str(&httpdate::fmt_http_date(system)).unwrap_or(HeaderValue::from_static(""))
}

fn outcome_headers(headers: &mut HeaderMap, outcome: &PatchOutcome) {
    headers.insert("upload-offset", HeaderValue::from(outcome.offset));
    if let Some(expires) = outcome.expires_at {
        headers.insert("upload-expires", http_date(expires));
    }
}

/// Runs [`tus::write`] in its own task: if the client vanishes and the connection drops this
/// handler, the write still sees the broken body, commits what arrived and releases the
/// upload, instead of being cancelled halfway.
async fn write_detached(
    state: &AppState,
    caller: Caller,
    id: Uuid,
    request: PatchRequest,
    body: Body,
) -> Result<PatchOutcome, tus::TusError> {
    let state = state.clone();
    tokio::spawn(
        async move { tus::write(&state, &caller, id, request, body.into_data_stream()).await },
    )
    .await
    .map_err(tus::TusError::Task)?
}

async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    require_tus_version(&headers)?;
    let length = number(&headers, "upload-length")?;
    let deferred = text(&headers, "upload-defer-length")?;
    let length = match (length, deferred) {
        (Some(length), None) => Some(length),
        (None, Some("1")) => None,
        (None, Some(_)) => return Err(AppError::bad_request("Upload-Defer-Length must be 1")),
        (Some(_), Some(_)) => {
            return Err(AppError::bad_request(
                "send either Upload-Length or Upload-Defer-Length, not both",
            ));
        }
        (None, None) => {
            return Err(AppError::bad_request(
                "Upload-Length or Upload-Defer-Length: 1 is required",
            ));
        }
    };
    let with_body = is_offset_stream(&headers)?;
    if !with_body && number(&headers, "content-length")?.unwrap_or(0) > 0 {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a creation body must be {OFFSET_OCTET_STREAM}"),
        ));
    }
    let request = CreateRequest {
        length,
        metadata: text(&headers, "upload-metadata")?
            .unwrap_or_default()
            .to_owned(),
    };
    let row = tus::create(&state, &caller, &request).await?;
    let location = format!("{}/files/{}", state.public_url, row.id);

    let mut response_headers = HeaderMap::new();
    response_headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(AppError::internal)?,
    );
    let outcome = if with_body || length == Some(0) {
        let mut request = patch_request(&headers, 0)?;
        request.length = None;
        match write_detached(&state, caller, row.id, request, body).await {
            Ok(outcome) => outcome,
            // The upload exists either way; the client resumes it with HEAD.
            Err(e) => {
                return Err(AppError::from(e).with_header(
                    header::LOCATION,
                    HeaderValue::from_str(&location).map_err(AppError::internal)?,
                ));
            }
        }
    } else {
        PatchOutcome {
            offset: 0,
            expires_at: row.expires_at,
            blake3: None,
        }
    };
    outcome_headers(&mut response_headers, &outcome);
    insert_part_size(&state, &mut response_headers, length);
    Ok((StatusCode::CREATED, response_headers).into_response())
}

async fn head_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    require_tus_version(&headers)?;
    let row = tus::resumable_upload(&state, &caller, path_id(&id)?).await?;
    let mut response = HeaderMap::new();
    response.insert("upload-offset", HeaderValue::from(row.offset));
    match row.length {
        Some(length) => response.insert("upload-length", HeaderValue::from(length)),
        None => response.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if !row.metadata.is_empty()
        && let Ok(value) = HeaderValue::from_str(&row.metadata)
    {
        response.insert("upload-metadata", value);
    }
    if let Some(expires) = tus::upload_expiry(&row) {
        response.insert("upload-expires", http_date(expires));
    }
    if row.state == UploadState::Uploading {
        insert_part_size(&state, &mut response, row.length);
    }
    Ok((StatusCode::OK, response).into_response())
}

async fn patch_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    require_tus_version(&headers)?;
    if !is_offset_stream(&headers)? {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("PATCH bodies must be Content-Type: {OFFSET_OCTET_STREAM}"),
        ));
    }
    let offset = number(&headers, "upload-offset")?
        .ok_or_else(|| AppError::bad_request("Upload-Offset is required"))?;
    let request = patch_request(&headers, offset)?;
    let outcome = write_detached(&state, caller, path_id(&id)?, request, body).await?;
    let mut response = HeaderMap::new();
    outcome_headers(&mut response, &outcome);
    Ok((StatusCode::NO_CONTENT, response).into_response())
}

async fn delete_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    require_tus_version(&headers)?;
    tus::terminate(&state, &caller, path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
