//! The recipients' HTML: the share page and the pages for links that do not work, rendered by
//! compiled templates (`server/templates/recipient/`, askama, escaping everything by default)
//! in the recipient's language; the strict CSP they are served under; safe
//! `Content-Disposition`.
//!
//! The pages need no JavaScript and load nothing: the style is inline (allowed by its hash
//! alone), a tenant's logo is a `data:` URL.

use std::fmt::Write as _;
use std::sync::LazyLock;

use askama::Template;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::branding::Logo;
use crate::download::SharePage;
use crate::i18n::{LOCALES, Locale};

/// The pages' one style sheet; phone first (one column below 40 rem).
const STYLE: &str = include_str!("../../templates/recipient/page.css");

/// The `Content-Security-Policy` of every recipient response: nothing may load or run but the
/// page's own style (by hash) and `data:` images; no frames, forms or base changes.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
});

/// One entry of the language switch.
struct LanguageChoice {
    tag: &'static str,
    name: &'static str,
    current: bool,
}

/// What every page has: language, title, the tenant's name and logo, footer and switch.
struct Chrome {
    lang: &'static str,
    /// The page's heading.
    title: String,
    /// The document's title: the heading and who it is from.
    head_title: String,
    style: &'static str,
    brand: String,
    logo: Option<String>,
    footer: &'static str,
    switch_label: &'static str,
    switch: Vec<LanguageChoice>,
}

impl Chrome {
    fn new(locale: Locale, title: String, brand: String, logo: Option<String>) -> Chrome {
        Chrome {
            lang: locale.tag(),
            head_title: format!("{title} — {brand}"),
            title,
            style: STYLE,
            brand,
            logo,
            footer: locale.text("page.footer"),
            switch_label: locale.text("lang.switch"),
            switch: LOCALES
                .iter()
                .map(|&l| LanguageChoice {
                    tag: l.tag(),
                    name: l.text("lang.name"),
                    current: l == locale,
                })
                .collect(),
        }
    }
}

/// A file row of the share page.
struct FileRow {
    name: String,
    size: String,
    blake3: String,
    href: String,
    label: String,
}

/// The "download all" button.
struct DownloadAll {
    href: String,
    label: String,
}

#[derive(Template)]
#[template(path = "recipient/share.html")]
struct ShareTemplate {
    chrome: Chrome,
    from_tenant: String,
    sent_by: Option<String>,
    expires_before: String,
    expires_after: String,
    expires_date: String,
    expires_machine: String,
    time_left: String,
    note_heading: &'static str,
    note: Option<String>,
    files_heading: &'static str,
    total: String,
    col_file: &'static str,
    col_size: &'static str,
    download: &'static str,
    blake3: &'static str,
    files: Vec<FileRow>,
    download_all: Option<DownloadAll>,
    verify: &'static str,
}

#[derive(Template)]
#[template(path = "recipient/message.html")]
struct MessageTemplate {
    chrome: Chrome,
    body: &'static str,
}

/// Why a link shows no files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such link (never says whether it ever existed).
    Unknown,
    /// It expired.
    Expired,
    /// Its sender withdrew it.
    Revoked,
    /// The file was downloaded as often as allowed.
    Exhausted,
}

impl Refusal {
    fn key(self) -> &'static str {
        match self {
            Refusal::Unknown => "error.unknown",
            Refusal::Expired => "error.expired",
            Refusal::Revoked => "error.revoked",
            Refusal::Exhausted => "error.exhausted",
        }
    }
}

/// The page for a link that shows no files, in `locale`, headed by the tenant's name and logo
/// when the link is a genuine one of its (`from`), else by Ferry's name.
pub fn refusal(locale: Locale, why: Refusal, from: Option<(String, Option<Logo>)>) -> String {
    let key = why.key();
    let (brand, logo) = from.unwrap_or_else(|| ("Ferry".to_owned(), None));
    let page = MessageTemplate {
        chrome: Chrome::new(
            locale,
            locale.text(&format!("{key}.title")).to_owned(),
            brand,
            logo.as_ref().map(Logo::data_url),
        ),
        body: locale.text(&format!("{key}.body")),
    };
    render(&page)
}

/// The share page for `token`, in `locale`, as of `now`.
pub fn share(locale: Locale, token: &str, page: &SharePage, now: OffsetDateTime) -> String {
    let l = locale;
    let files: Vec<FileRow> = page
        .files
        .iter()
        .map(|file| FileRow {
            name: file.name.clone(),
            size: l.size(file.size),
            blake3: file.blake3.clone(),
            href: format!("/d/{token}/f/{}", file.id),
            label: l.fill("page.download_file", &[("name", &file.name)]),
        })
        .collect();
    let total_bytes: u64 = page.files.iter().map(|f| f.size).sum();
    let count = page.files.len().to_string();
    let total = if page.files.len() == 1 {
        l.fill("page.total_one", &[("size", &l.size(total_bytes))])
    } else {
        l.fill(
            "page.total",
            &[("count", &count), ("size", &l.size(total_bytes))],
        )
    };
    let download_all = (page.files.len() > 1).then(|| DownloadAll {
        href: format!("/d/{token}/all.zip"),
        label: l.fill(
            "page.download_all",
            &[("count", &count), ("size", &l.size(total_bytes))],
        ),
    });
    let expires = page.share.expires_at;
    // "Available until {date}": the date goes in a <time> of its own.
    let expires_sentence = l
        .text("page.expires")
        .split_once("{date}")
        .unwrap_or(("", ""));
    let template = ShareTemplate {
        chrome: Chrome::new(
            l,
            l.text("page.title").to_owned(),
            page.tenant_name.clone(),
            page.logo.as_ref().map(|logo| logo.data_url()),
        ),
        from_tenant: l.fill("page.from_tenant", &[("tenant", &page.tenant_name)]),
        sent_by: page
            .sender
            .as_deref()
            .map(|sender| l.fill("page.sent_by", &[("sender", sender)])),
        expires_before: expires_sentence.0.to_owned(),
        expires_after: expires_sentence.1.to_owned(),
        expires_date: l.date(expires),
        expires_machine: expires
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        time_left: l.time_left(now, expires),
        note_heading: l.text("page.note"),
        note: page.share.note.clone(),
        files_heading: l.text("page.files"),
        total,
        col_file: l.text("page.file"),
        col_size: l.text("page.size"),
        download: l.text("page.download"),
        blake3: l.text("page.blake3"),
        files,
        download_all,
        verify: l.text("page.verify"),
    };
    render(&template)
}

fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|e| {
        // Only a formatting failure of a field could land here; say so plainly.
        tracing::error!(error = %e, "a recipient page failed to render");
        "<!doctype html><title>Ferry</title><p>This page could not be shown.</p>".to_owned()
    })
}

/// `attachment` with an ASCII fallback name and the exact name in RFC 8187 `filename*`.
/// Path separators, quotes and control characters never reach the header.
pub fn content_disposition(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let base = if base.is_empty() || base == "." || base == ".." {
        "download"
    } else {
        base
    };
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in base.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::db::shares::{ShareRow, SharedFile};

    #[test]
    fn disposition_is_safe_for_hostile_names() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let hostile = content_disposition("../../etc/\"passwd\"\r\n.txt");
        assert!(!hostile.contains('\r') && !hostile.contains('\n') && !hostile.contains(".."));
        assert!(hostile.starts_with("attachment; filename=\"_passwd_"));
        assert!(
            content_disposition("Übersicht €.xlsx")
                .contains("filename*=UTF-8''%C3%9Cbersicht%20%E2%82%AC.xlsx")
        );
        assert!(content_disposition("").contains("filename=\"download\""));
    }

    fn page(name: &str, note: &str) -> SharePage {
        let file = |n: u128, name: &str, size| SharedFile {
            id: Uuid::from_u128(n),
            name: name.to_owned(),
            size,
            blake3: "ab".repeat(32),
            crc32: Some(0),
            completed_at: datetime!(2026-12-01 10:00 UTC),
        };
        SharePage {
            share: ShareRow {
                id: Uuid::from_u128(7),
                tenant_id: Uuid::from_u128(8),
                token_hash: Vec::new(),
                note: Some(note.to_owned()),
                expires_at: datetime!(2026-12-08 05:37 UTC),
                revoked_at: None,
                ended_at: None,
                link: None,
            },
            files: vec![file(1, name, 1536), file(2, "b.bin", 3 << 20)],
            tenant_name: "Ziekenhuis <Rivierenland>".to_owned(),
            logo: None,
            sender: Some("dr.x@example.eu".to_owned()),
        }
    }

    #[test]
    fn every_language_escapes_what_senders_and_tenants_wrote() {
        let hostile = "<script>alert(1)</script>.pdf";
        let now = datetime!(2026-12-03 04:00 UTC);
        for locale in LOCALES {
            let html = share(locale, "tok", &page(hostile, "<b>hi</b> & bye"), now);
            assert!(!html.contains("<script>"), "{}: {html}", locale.tag());
            assert!(!html.contains("<b>hi</b>"), "{}", locale.tag());
            assert!(
                html.contains("&#60;script&#62;alert(1)&#60;/script&#62;.pdf"),
                "{}: {html}",
                locale.tag()
            );
            assert!(html.contains("&#60;Rivierenland&#62;"), "{}", locale.tag());
            assert!(html.contains(&format!("<html lang=\"{}\">", locale.tag())));
            assert!(html.contains("href=\"/d/tok/all.zip\""), "{}", locale.tag());
        }
    }

    #[test]
    fn pages_speak_the_language_asked_for() {
        let now = datetime!(2026-12-03 04:00 UTC);
        let dutch = share(Locale::Nl, "tok", &page("a.pdf", "n"), now);
        assert!(dutch.contains("Bestanden voor u") && dutch.contains("8 december 2026"));
        assert!(dutch.contains("nog 5 dagen") && dutch.contains("1,5\u{a0}KiB"));
        let german = refusal(Locale::De, Refusal::Revoked, None);
        assert!(
            german.contains("Dieser Link wurde zurückgezogen"),
            "{german}"
        );
        let french = refusal(
            Locale::Fr,
            Refusal::Exhausted,
            Some(("Ziekenhuis".into(), None)),
        );
        assert!(french.contains("Limite de téléchargements atteinte"));
        assert!(
            french.contains("<span class=\"brand-name\">Ziekenhuis</span>"),
            "{french}"
        );
        assert!(refusal(Locale::En, Refusal::Unknown, None).contains("This link does not work"));
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_style() {
        assert!(CSP.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!CSP.contains("unsafe"));
    }
}
