//! The recipients' HTML: plain, dependency-free, escaped; and safe `Content-Disposition`.

use std::fmt::Write as _;

use crate::db::shares::{ShareRow, SharedFile};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A size in binary units for people.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
table{border-collapse:collapse;width:100%}td,th{padding:.5rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
.name{font-weight:600;overflow-wrap:anywhere}.size{white-space:nowrap}\
.hash{display:block;margin-top:.25rem;color:#555;font-size:.7rem;word-break:break-all}\
a.button{background:#0b5394;color:#fff;padding:.4rem .8rem;border-radius:4px;text-decoration:none;white-space:nowrap}\
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title><style>{STYLE}</style></head>\
         <body>{body}</body></html>",
        escape(title)
    )
}

/// A page with one sentence (expired, unknown link).
pub fn message(text: &str) -> String {
    document("Ferry", &format!("<h1>Ferry</h1><p>{}</p>", escape(text)))
}

/// The share page: files, sizes, BLAKE3, expiry, one download button per file.
pub fn share(token: &str, share: &ShareRow, files: &[SharedFile]) -> String {
    let mut rows = String::new();
    for file in files {
        let _ = write!(
            rows,
            "<tr><td><span class=\"name\">{name}</span>\
             <code class=\"hash\" title=\"BLAKE3 of the file\">BLAKE3 {hash}</code></td>\
             <td class=\"size\">{size}</td>\
             <td><a class=\"button\" href=\"/d/{token}/f/{id}\" download>Download</a></td></tr>",
            name = escape(&file.name),
            size = human_size(file.size),
            hash = escape(&file.blake3),
            token = escape(token),
            id = file.id,
        );
    }
    let total: u64 = files.iter().map(|f| f.size).sum();
    let all = if files.len() > 1 {
        format!(
            "<p><a class=\"button\" href=\"/d/{token}/all.zip\" download>Download all {count} \
             files as one ZIP ({size})</a></p>",
            token = escape(token),
            count = files.len(),
            size = human_size(total),
        )
    } else {
        String::new()
    };
    let note = share
        .note
        .as_deref()
        .map(|n| format!("<p>{}</p>", escape(n)))
        .unwrap_or_default();
    document(
        "Files for you — Ferry",
        &format!(
            "<h1>Files for you</h1>{note}<p>Available until {expires}.</p>\
             <table><thead><tr><th>File</th><th>Size</th><th><span class=\"sr\">Download</span></th></tr></thead>\
             <tbody>{rows}</tbody></table>{all}",
            expires = expiry(share.expires_at),
        ),
    )
}

/// `<time>` with the machine value, showing e.g. "8 December 2026, 05:37 UTC".
fn expiry(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let machine = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = at
        .format(time::macros::format_description!(
            "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    format!("<time datetime=\"{machine}\">{shown}</time>")
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
    use super::*;

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

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12), "12 B");
        let at = time::macros::datetime!(2026-12-08 05:37:41.5 UTC);
        assert_eq!(
            expiry(at),
            "<time datetime=\"2026-12-08T05:37:41.5Z\">8 December 2026, 05:37 UTC</time>"
        );
    }
}
