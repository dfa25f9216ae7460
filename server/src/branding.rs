//! How a tenant presents itself on its recipients' pages: a display name and a small logo, set
//! by the tenant's admins. A recipient who does not know the sender decides in seconds whether
//! a page looks safe; the hospital's own name and logo are most of that.
//!
//! The logo is PNG or JPEG only (no SVG: nothing active), at most [`MAX_LOGO_BYTES`], checked
//! by its magic bytes, and shown as a `data:` URL, so the page loads nothing from elsewhere.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, DbError};

/// The largest logo, decoded: a logo shown at 48 px high needs far less.
pub const MAX_LOGO_BYTES: usize = 48 * 1024;
/// The longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A tenant's branding as the admin API reads and writes it. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    /// The name recipients see (1–100 characters, no control characters); `null`: the tenant's
    /// own name.
    #[schema(example = "Ziekenhuis Rivierenland")]
    pub display_name: Option<String>,
    /// The logo as a `data:image/png;base64,…` or `data:image/jpeg;base64,…` URL, at most
    /// 48 KiB decoded; `null`: none.
    pub logo: Option<String>,
}

/// Why a branding was refused (422 `invalid_branding`), naming the rule.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBranding(pub String);

/// A logo that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    /// `image/png` or `image/jpeg`, from the bytes themselves.
    pub content_type: &'static str,
    /// The image.
    pub bytes: Vec<u8>,
}

impl Logo {
    /// The image as a `data:` URL, for an `<img src>` under `img-src data:`.
    pub fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.content_type,
            STANDARD.encode(&self.bytes)
        )
    }

    /// A stored logo, if its type is one Ferry accepts (anything else is not shown).
    pub fn from_stored(content_type: &str, bytes: Vec<u8>) -> Option<Logo> {
        let known = sniff(&bytes)?;
        (known == content_type).then_some(Logo {
            content_type: known,
            bytes,
        })
    }
}

/// The image type `bytes` start like, if PNG or JPEG.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// A branding that passed the checks, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidBranding {
    /// Trimmed display name.
    pub display_name: Option<String>,
    /// The decoded logo.
    pub logo: Option<Logo>,
}

impl Branding {
    /// Checks the name and decodes the logo.
    pub fn validated(&self) -> Result<ValidBranding, InvalidBranding> {
        let display_name = match self.display_name.as_deref().map(str::trim) {
            None => None,
            Some(name) => {
                let chars = name.chars().count();
                if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS {
                    return Err(InvalidBranding(format!(
                        "display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"
                    )));
                }
                if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
                    return Err(InvalidBranding(
                        "display_name must not contain control or bidirectional characters".into(),
                    ));
                }
                Some(name.to_owned())
            }
        };
        let logo = self.logo.as_deref().map(decode_logo).transpose()?;
        Ok(ValidBranding { display_name, logo })
    }
}

impl ValidBranding {
    /// The API's view of it.
    pub fn to_api(&self) -> Branding {
        Branding {
            display_name: self.display_name.clone(),
            logo: self.logo.as_ref().map(Logo::data_url),
        }
    }
}

/// Tenant `tenant_id`'s name and its branding as stored (a logo of a type Ferry does not show
/// is left out), for its pages and its admins.
pub async fn of_tenant(db: &Db, tenant_id: Uuid) -> Result<(String, ValidBranding), DbError> {
    let stored = db.branding(tenant_id).await?;
    let logo = stored
        .logo
        .and_then(|(content_type, bytes)| Logo::from_stored(&content_type, bytes));
    Ok((
        stored.name,
        ValidBranding {
            display_name: stored.display_name,
            logo,
        },
    ))
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

fn decode_logo(url: &str) -> Result<Logo, InvalidBranding> {
    let refused = |why: &str| InvalidBranding(format!("logo {why}"));
    let (declared, data) = url
        .strip_prefix("data:image/png;base64,")
        .map(|d| ("image/png", d))
        .or_else(|| {
            url.strip_prefix("data:image/jpeg;base64,")
                .map(|d| ("image/jpeg", d))
        })
        .ok_or_else(|| refused("must be a data:image/png;base64 or data:image/jpeg;base64 URL"))?;
    // Refuse before decoding what could only be too large.
    if data.len() > MAX_LOGO_BYTES.div_ceil(3) * 4 + 4 {
        return Err(refused(&format!("must be at most {MAX_LOGO_BYTES} bytes")));
    }
    let bytes = STANDARD
        .decode(data.trim())
        .map_err(|_| refused("is not valid base64"))?;
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(refused(&format!("must be at most {MAX_LOGO_BYTES} bytes")));
    }
    match sniff(&bytes) {
        Some(found) if found == declared => Ok(Logo {
            content_type: found,
            bytes,
        }),
        _ => Err(refused(&format!("is not a {declared} image"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn branding(name: Option<&str>, logo: Option<String>) -> Branding {
        Branding {
            display_name: name.map(str::to_owned),
            logo,
        }
    }

    #[test]
    fn names_and_logos_within_the_rules_pass() {
        let url = format!("data:image/png;base64,{}", STANDARD.encode(PNG));
        let valid = branding(Some("  Ziekenhuis Rivierenland "), Some(url.clone()))
            .validated()
            .expect("valid");
        assert_eq!(
            valid.display_name.as_deref(),
            Some("Ziekenhuis Rivierenland")
        );
        assert_eq!(valid.to_api().logo, Some(url));
        assert_eq!(
            branding(None, None).validated().expect("empty"),
            ValidBranding::default()
        );
    }

    #[test]
    fn everything_else_is_refused_with_its_rule() {
        let too_big = format!(
            "data:image/png;base64,{}",
            STANDARD.encode([PNG, &vec![0u8; MAX_LOGO_BYTES]].concat())
        );
        let svg = format!("data:image/svg+xml;base64,{}", STANDARD.encode("<svg/>"));
        let lying = format!("data:image/jpeg;base64,{}", STANDARD.encode(PNG));
        for (case, expected) in [
            (branding(Some(""), None), "1 to 100"),
            (branding(Some(&"x".repeat(101)), None), "1 to 100"),
            (branding(Some("Bank\u{202E}lapyap"), None), "bidirectional"),
            (branding(Some("a\nb"), None), "control"),
            (branding(None, Some(too_big)), "at most"),
            (branding(None, Some(svg)), "data:image/png"),
            (branding(None, Some(lying)), "not a image/jpeg"),
            (
                branding(None, Some("data:image/png;base64,%%%".into())),
                "base64",
            ),
        ] {
            let refused = case.validated().expect_err("refused");
            assert!(refused.0.contains(expected), "{case:?}: {refused}");
        }
    }

    #[test]
    fn stored_logos_of_another_type_are_not_shown() {
        assert!(Logo::from_stored("image/png", PNG.to_vec()).is_some());
        assert!(Logo::from_stored("image/jpeg", PNG.to_vec()).is_none());
        assert!(Logo::from_stored("image/png", b"<svg/>".to_vec()).is_none());
    }
}
