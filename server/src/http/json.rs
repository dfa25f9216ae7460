//! A JSON body extractor whose rejections use the API's error shape, and which takes only
//! objects (as every request body of the API is).

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::AppError;

/// Like `axum::Json`, but a malformed body is a `{"error","message"}` 400/415/422.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            // Every body of this API is an object: serde would also take a struct from an
            // array (`[null, null]`), which the document does not allow.
            Ok(axum::Json(value)) if !value.is_object() => Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the body must be a JSON object",
            )),
            Ok(axum::Json(value)) => serde_json::from_value(value).map(ApiJson).map_err(|e| {
                AppError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            }),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    StatusCode::UNPROCESSABLE_ENTITY => "invalid",
                    _ => "bad_request",
                };
                Err(AppError::new(status, code, rejection.body_text()))
            }
        }
    }
}
