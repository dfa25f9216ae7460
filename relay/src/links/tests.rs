//! The link finder and rewriter on messages as mail clients write them.

use std::cell::Cell;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::transfer::{
    decode_base64, decode_quoted_printable, encode_base64, encode_quoted_printable,
};
use super::*;

const PREFIX: &str = "https://ferry.example.eu/d/";
const ALT: &str = "_000_AM0PR07MB6130B1D6E2A94C0E9F1C3A77D9012AM0PR07MB6130eurp_";
const MIXED: &str = "_004_AM0PR07MB6130B1D6E2A94C0E9F1C3A77D9012AM0PR07MB6130eurp_";

/// A 55-character token starting with `tag` (distinct tags, distinct tokens).
fn tok(tag: &str) -> String {
    let filler = "kR7_vQ2-mX9pL4sT8wB3nF6hJ1cD5gY0zE";
    let token: String = tag.chars().chain(filler.chars().cycle()).take(55).collect();
    assert_eq!(token.len(), TOKEN_LEN);
    token
}

fn mapping(pairs: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.into_iter().collect();
    move |token| map.get(token).cloned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("test messages are UTF-8")
}

/// Bodies of the parts delimited by `boundary` (each part's headers dropped).
fn part_bodies(message: &[u8], boundary: &str) -> Vec<String> {
    let message = format!("\r\n{}", text(message));
    message
        .split(&format!("\r\n--{boundary}"))
        .skip(1)
        .filter(|piece| !piece.starts_with("--"))
        .map(|piece| {
            piece
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default()
        })
        .collect()
}

fn base64_lines(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    encode_base64(bytes, false, &mut out);
    text(&out)
}

fn base64_decoded(body: &str) -> String {
    text(&decode_base64(body.as_bytes()).expect("valid base64"))
}

fn qp_decoded(body: &str) -> String {
    String::from_utf8_lossy(&decode_quoted_printable(body.as_bytes())).into_owned()
}

/// Lines of at most 76 characters, every `=` an `=XX` upper-case escape or a soft break,
/// nothing outside printable ASCII, no whitespace at a line's end.
fn assert_valid_qp(body: &str) {
    for line in body.split("\r\n") {
        assert!(line.len() <= 76, "line of {}: {line:?}", line.len());
        assert!(
            !line.ends_with([' ', '\t']),
            "trailing whitespace: {line:?}"
        );
        let bytes = line.as_bytes();
        for (at, &byte) in bytes.iter().enumerate() {
            assert!(byte == b' ' || byte == b'\t' || (33..=126).contains(&byte));
            if byte == b'=' && at + 1 != bytes.len() {
                let escape = bytes.get(at + 1..at + 3).expect("complete escape");
                assert!(
                    escape.iter().all(|b| b"0123456789ABCDEF".contains(b)),
                    "bad escape in {line:?}"
                );
            }
        }
    }
}

/// A text/plain body as Outlook writes it in quoted-printable: Latin-1 umlauts escaped,
/// the link cut by a soft break where the 76-character line ends.
fn outlook_qp_plain(token: &str) -> String {
    format!(
        "Guten Tag Frau M=FCller,\r\n\
         \r\n\
         die Unterlagen liegen hier bereit: {PREFIX}{}=\r\n\
         {}\r\n\
         \r\n\
         Mit freundlichen Gr=FC=DFen\r\n\
         Jan Kr=E4mer\r\n",
        &token[..13],
        &token[13..]
    )
}

fn html_with_link(token: &str) -> String {
    format!(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; \
         charset=iso-8859-1\"></head><body><p>Guten Tag Frau M&uuml;ller,</p><p>die \
         Unterlagen liegen <a href=\"{PREFIX}{token}\">hier</a> bereit.</p><p>Mit \
         freundlichen Gr&uuml;&szlig;en<br>Jan Kr&auml;mer</p></body></html>\r\n"
    )
}

/// multipart/alternative: the quoted-printable text and the base64 HTML.
fn alternative(token: &str) -> String {
    format!(
        "Content-Type: multipart/alternative;\r\n\
         \tboundary=\"{ALT}\"\r\n\
         \r\n\
         --{ALT}\r\n\
         Content-Type: text/plain; charset=\"iso-8859-1\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         {}\r\n\
         --{ALT}\r\n\
         Content-Type: text/html; charset=\"iso-8859-1\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {}\r\n\
         \r\n\
         --{ALT}--\r\n",
        outlook_qp_plain(token),
        base64_lines(html_with_link(token).as_bytes())
    )
}

fn headers(content_type: &str) -> String {
    format!(
        "From: =?iso-8859-1?Q?Jan_Kr=E4mer?= <jan@tenant.example>\r\n\
         To: Anna Mueller <anna@client.example>\r\n\
         Subject: Unterlagen\r\n\
         Date: Fri, 4 Dec 2026 10:12:44 +0000\r\n\
         Message-ID: <AM0PR07MB6130B1D6E2A94C0E9F1C3A77D9012@AM0PR07MB6130.eurprd07.prod>\r\n\
         MIME-Version: 1.0\r\n\
         {content_type}"
    )
}

/// A fake PDF carrying a link of its own, base64 in 72-character lines (re-encoding it
/// would show).
fn pdf_attachment(token: &str) -> String {
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    pdf.extend_from_slice(format!("2 0 obj\n<< /URI ({PREFIX}{token}) >>\nendobj\n").as_bytes());
    pdf.extend((0u8..=255).cycle().take(700));
    pdf.extend_from_slice(b"\n%%EOF\n");
    let encoded = STANDARD.encode(&pdf);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(72)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "Content-Type: application/pdf; name=\"Vertrag.pdf\"\r\n\
         Content-Description: Vertrag.pdf\r\n\
         Content-Disposition: attachment; filename=\"Vertrag.pdf\"; size={};\r\n\
         \tcreation-date=\"Fri, 04 Dec 2026 10:11:02 GMT\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {}\r\n",
        pdf.len(),
        lines.join("\r\n")
    )
}

/// What Outlook sends with a PDF attached: multipart/mixed around the alternative.
fn outlook_message(token: &str, pdf_token: &str) -> String {
    format!(
        "{}\r\n\
         --{MIXED}\r\n\
         {}\r\n\
         --{MIXED}\r\n\
         {}\r\n\
         --{MIXED}--\r\n",
        headers(&format!(
            "Content-Type: multipart/mixed;\r\n\tboundary=\"{MIXED}\"\r\n"
        )),
        alternative(token),
        pdf_attachment(pdf_token)
    )
}

#[test]
fn plain_7bit_message_gets_the_new_token() {
    let (old, new) = (tok("old"), tok("new"));
    let message = format!(
        "From: jan@tenant.example\r\nTo: anna@client.example\r\nSubject: files\r\n\r\n\
         Hello,\r\nhere they are: {PREFIX}{old}\r\nJan\r\n"
    );
    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    assert_eq!(text(&out), message.replace(&old, &new));
    assert!(!text(&out).contains(&old));
}

#[test]
fn what_follows_the_token_is_kept() {
    let (old, new) = (tok("old"), tok("new"));
    let message = format!(
        "Subject: x\r\n\r\n{PREFIX}{old}/files/0f6e2a3c-5b1d-4c8e-9a7f-2d3b4c5e6f70\r\n\
         ({PREFIX}{old}). <{PREFIX}{old}>\r\n"
    );
    let out = text(&rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    ));
    assert!(out.contains(&format!(
        "{PREFIX}{new}/files/0f6e2a3c-5b1d-4c8e-9a7f-2d3b4c5e6f70\r\n"
    )));
    assert!(out.contains(&format!("({PREFIX}{new}). <{PREFIX}{new}>")));
    assert!(!out.contains(&old));
}

#[test]
fn runs_of_54_or_56_characters_are_not_tokens() {
    let valid = tok("valid");
    let long = format!("{}x", tok("long"));
    let short = &tok("short")[..54];
    let message = format!(
        "Subject: x\r\n\r\n{PREFIX}{long}\r\n{PREFIX}{short}\r\n{PREFIX}{short}.\r\n\
         {PREFIX}{valid}\r\n"
    );
    assert_eq!(
        find_tokens(message.as_bytes(), PREFIX),
        BTreeSet::from([valid.clone()])
    );
    let out = text(&rewrite(message.as_bytes(), PREFIX, &|_| {
        Some("withheld".to_owned())
    }));
    assert_eq!(out, message.replace(&valid, "withheld"));
}

#[test]
fn prefix_is_compared_ascii_case_insensitively() {
    let (old, new) = (tok("old"), tok("new"));
    let message = format!("Subject: x\r\n\r\nHTTPS://Ferry.Example.EU/D/{old}\r\n");
    let replace = mapping(vec![(old.clone(), new.clone())]);
    for prefix in [PREFIX, "https://FERRY.example.eu/d/"] {
        let out = text(&rewrite(message.as_bytes(), prefix, &replace));
        // Only the token changes; the link keeps the case the sender wrote.
        assert_eq!(
            out,
            format!("Subject: x\r\n\r\nHTTPS://Ferry.Example.EU/D/{new}\r\n")
        );
    }
    assert_eq!(
        find_tokens(message.as_bytes(), "HTTPS://ferry.example.eu/D/"),
        BTreeSet::from([old])
    );
}

#[test]
fn nothing_replaced_means_the_same_bytes() {
    let (old, pdf_token) = (tok("old"), tok("pdf"));
    let message = outlook_message(&old, &pdf_token);
    let bytes = message.as_bytes();
    assert_eq!(rewrite(bytes, PREFIX, &|_| None), bytes);
    assert_eq!(rewrite(bytes, PREFIX, &|t| Some(t.to_owned())), bytes);
    let unrelated = mapping(vec![(tok("other"), tok("new"))]);
    assert_eq!(rewrite(bytes, PREFIX, &unrelated), bytes);
    // The token is there (not a vacuous comparison).
    assert!(find_tokens(bytes, PREFIX).contains(&old));
}

#[test]
fn quoted_printable_and_base64_alternatives_are_both_rewritten() {
    let (old, new) = (tok("old"), tok("new"));
    let message = format!("{}{}", headers(""), alternative(&old));
    let before = part_bodies(message.as_bytes(), ALT);
    assert_eq!(before.len(), 2);
    assert!(before[0].split("\r\n").all(|line| line.len() <= 76));
    // The soft break cuts the link: no literal occurrence for a raw pass to find.
    assert!(!message.contains(&format!("{PREFIX}{old}")));

    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    let after = part_bodies(&out, ALT);
    assert_eq!(after.len(), 2);
    assert_valid_qp(&after[0]);
    assert_eq!(
        qp_decoded(&after[0]),
        qp_decoded(&before[0]).replace(&old, &new)
    );
    assert!(qp_decoded(&after[0]).contains(&format!("bereit: {PREFIX}{new}\r\n")));
    assert!(after[1].split("\r\n").all(|line| line.len() <= 76));
    assert_eq!(base64_decoded(&after[1]), html_with_link(&new));
    assert!(base64_decoded(&after[1]).contains(&format!("href=\"{PREFIX}{new}\"")));
    // The headers of the message and of both parts are untouched.
    let out = text(&out);
    for header in [
        headers(""),
        "Content-Type: text/plain; charset=\"iso-8859-1\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            .to_owned(),
        "Content-Type: text/html; charset=\"iso-8859-1\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
            .to_owned(),
    ] {
        assert!(out.contains(&header), "lost: {header:?}");
    }
    assert!(out.ends_with(&format!("--{ALT}--\r\n")));
}

#[test]
fn pdf_attachment_next_to_the_alternative_stays_byte_identical() {
    let (old, new, pdf_token) = (tok("old"), tok("new"), tok("pdf"));
    let message = outlook_message(&old, &pdf_token);
    let replace = |token: &str| {
        Some(if token == old {
            new.clone()
        } else {
            "withheld".into()
        })
    };
    let out = rewrite(message.as_bytes(), PREFIX, &replace);
    let out_text = text(&out);
    assert!(out_text.contains(&pdf_attachment(&pdf_token)));
    let (before, after) = (
        part_bodies(message.as_bytes(), MIXED),
        part_bodies(&out, MIXED),
    );
    assert_eq!(after.len(), 2);
    assert_eq!(after[1], before[1]);
    // The alternative inside was rewritten.
    let alternative_after = part_bodies(after[0].as_bytes(), ALT);
    assert!(qp_decoded(&alternative_after[0]).contains(&format!("{PREFIX}{new}")));
    assert!(base64_decoded(&alternative_after[1]).contains(&format!("{PREFIX}{new}")));
    assert!(!qp_decoded(&alternative_after[0]).contains(&old));
}

#[test]
fn forwarded_message_attachment_is_rewritten() {
    let (old, new) = (tok("old"), tok("new"));
    let outer = "outer-7Hq";
    let message = format!(
        "{}\r\n\
         --{outer}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         See the forwarded mail.\r\n\
         --{outer}\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: attachment; filename=\"Unterlagen.eml\"\r\n\
         \r\n\
         From: jan@tenant.example\r\n\
         Subject: Unterlagen\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         <p>Die Unterlagen: <a href=3D\"{PREFIX}{}=\r\n\
         {}\">Download</a></p>\r\n\
         \r\n\
         --{outer}--\r\n",
        headers(&format!(
            "Content-Type: multipart/mixed; boundary={outer}\r\n"
        )),
        &old[..20],
        &old[20..]
    );
    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    let parts = part_bodies(&out, outer);
    assert_eq!(parts.len(), 2);
    let forwarded_body = parts[1]
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .expect("the forwarded message has a body");
    assert_valid_qp(&forwarded_body);
    assert!(qp_decoded(&forwarded_body).contains(&format!("href=\"{PREFIX}{new}\"")));
    assert!(!qp_decoded(&forwarded_body).contains(&old));
    assert!(text(&out).contains("From: jan@tenant.example\r\nSubject: Unterlagen\r\n"));
}

#[test]
fn link_in_a_header_is_rewritten_by_the_raw_pass() {
    let (old, new) = (tok("old"), tok("new"));
    let message = format!(
        "Subject: x\r\nX-Link: <{PREFIX}{old}>\r\nContent-Type: image/png\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\nnot text: {PREFIX}{old}\r\n"
    );
    assert_eq!(
        find_tokens(message.as_bytes(), PREFIX),
        BTreeSet::from([old.clone()])
    );
    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    assert_eq!(text(&out), message.replace(&old, &new));
}

#[test]
fn shorter_replacement_in_quoted_printable_is_reencoded() {
    let old = tok("old");
    let message = format!(
        "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n\
         Gr=C3=BC=C3=9Fe, hier der Link zu den Dateien f=C3=BCr das Projekt: {}=\r\n\
         {}{old}=\r\n\
         /files/0f6e2a3c-5b1d-4c8e-9a7f-2d3b4c5e6f70 (g=C3=BCltig bis Freitag).\r\n\
         Danke!\r\n",
        &PREFIX[..7],
        &PREFIX[7..]
    );
    assert!(message.split("\r\n").all(|line| line.len() <= 76));
    let out = text(&rewrite(message.as_bytes(), PREFIX, &|_| {
        Some("withheld".to_owned())
    }));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).expect("body");
    assert_valid_qp(body);
    assert_eq!(
        qp_decoded(body),
        format!(
            "Grüße, hier der Link zu den Dateien für das Projekt: {PREFIX}withheld/files/\
             0f6e2a3c-5b1d-4c8e-9a7f-2d3b4c5e6f70 (gültig bis Freitag).\r\nDanke!\r\n"
        )
    );
    assert!(out.starts_with(message.split_once("\r\n\r\n").expect("headers").0));
}

#[test]
fn missing_close_delimiter_makes_the_rest_the_last_part() {
    let (old, new) = (tok("old"), tok("new"));
    let message = format!(
        "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n\
         --b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\
         \r\n{PREFIX}{}=\r\n{}\r\n",
        &old[..30],
        &old[30..]
    );
    let out = text(&rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    ));
    let (kept, last_body) = out.rsplit_once("\r\n\r\n").expect("last part body");
    assert_eq!(
        kept,
        message.rsplit_once("\r\n\r\n").expect("last part body").0
    );
    assert_eq!(qp_decoded(last_body), format!("{PREFIX}{new}\r\n"));
    assert!(!out.contains("--b1--"));
}

#[test]
fn boundary_with_quotes_and_equals_signs() {
    let (old, new) = (tok("old"), tok("new"));
    let boundary = "=_Part_0=_abc.1733=";
    let message = format!(
        "Content-Type: multipart/mixed; (comment; not a parameter)\r\n\
         \tboundary = \"{boundary}\"; charset=\"x\"\r\n\r\n\
         preamble\r\n--{boundary}\r\n\
         Content-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n\
         {PREFIX}{}=\r\n{}\r\n\
         --{boundary}--  \r\nepilogue {PREFIX}\r\n",
        &old[..30],
        &old[30..]
    );
    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    let parts = part_bodies(&out, boundary);
    assert_eq!(parts.len(), 1);
    assert_eq!(qp_decoded(&parts[0]), format!("{PREFIX}{new}"));
    assert!(text(&out).ends_with(&format!("--{boundary}--  \r\nepilogue {PREFIX}\r\n")));
    // An unquoted boundary with `=` (common, though RFC 2045 wants quotes) works too.
    let unquoted = message.replace(&format!("\"{boundary}\""), boundary);
    let out = rewrite(
        unquoted.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    assert_eq!(
        qp_decoded(&part_bodies(&out, boundary)[0]),
        format!("{PREFIX}{new}")
    );
}

/// `levels` multipart/mixed entities, one inside the other, around `innermost`.
fn nested(levels: usize, innermost: &str) -> String {
    let mut entity = innermost.to_owned();
    for level in 0..levels {
        entity = format!(
            "Content-Type: multipart/mixed; boundary=\"level{level}\"\r\n\r\n\
             --level{level}\r\n{entity}\r\n--level{level}--\r\n"
        );
    }
    format!("Subject: deep\r\nMIME-Version: 1.0\r\n{entity}")
}

#[test]
fn forty_levels_of_nesting_still_get_the_raw_pass() {
    let (old, new) = (tok("old"), tok("new"));
    let message = nested(
        40,
        &format!("Content-Type: text/plain\r\n\r\nDeep: {PREFIX}{old}"),
    );
    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    assert_eq!(text(&out), message.replace(&old, &new));
    assert_eq!(
        find_tokens(message.as_bytes(), PREFIX),
        BTreeSet::from([old])
    );
}

#[test]
fn text_is_decoded_down_to_the_nesting_limit_only() {
    let (old, new) = (tok("old"), tok("new"));
    let split_link = format!(
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         {PREFIX}{}=\r\n{}",
        &old[..30],
        &old[30..]
    );
    let replace = mapping(vec![(old.clone(), new.clone())]);
    let at_limit = nested(MAX_DEPTH, &split_link);
    assert_eq!(
        find_tokens(at_limit.as_bytes(), PREFIX),
        BTreeSet::from([old.clone()])
    );
    let out = rewrite(at_limit.as_bytes(), PREFIX, &replace);
    // The new link is soft-broken in turn: look for it decoded.
    assert_eq!(find_tokens(&out, PREFIX), BTreeSet::from([new]));
    let beyond = nested(MAX_DEPTH + 1, &split_link);
    assert_eq!(
        rewrite(beyond.as_bytes(), PREFIX, &replace),
        beyond.as_bytes()
    );
}

/// xorshift64: reproducible noise without a dependency.
fn noise(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn malformed_input_does_not_panic() {
    let old = tok("old");
    let replace = |_: &str| Some("withheld".to_owned());
    let fragments: [&[u8]; 12] = [
        b"\r\n",
        b"\n",
        b"=",
        b"=\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Type: \"(\\",
        PREFIX.as_bytes(),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..400 {
        let mut message = Vec::new();
        let pieces = noise(&mut seed) % 60;
        for _ in 0..pieces {
            let pick = noise(&mut seed);
            match pick % 4 {
                0 => message.push((pick >> 8) as u8),
                1 => message.extend_from_slice(old.as_bytes()),
                _ => message.extend_from_slice(fragments[(pick >> 8) as usize % 12]),
            }
        }
        let _ = rewrite(&message, PREFIX, &replace);
        let _ = find_tokens(&message, PREFIX);
    }
    // Every truncation of a real message.
    let message = outlook_message(&old, &tok("pdf"));
    for cut in 0..=message.len() {
        let truncated = &message.as_bytes()[..cut];
        let _ = rewrite(truncated, PREFIX, &replace);
        let _ = find_tokens(truncated, PREFIX);
    }
    let odd: Vec<String> = vec![
        format!("Content-Type: text/plain; charset=utf-8\r\nX-Link: {PREFIX}{old}"),
        format!("Content-Transfer-Encoding: quoted-printable\r\n\r\n{PREFIX}{old}\r\n="),
        format!("Content-Transfer-Encoding: quoted-printable\r\n\r\n{PREFIX}{old}=4"),
        format!("Content-Transfer-Encoding: base64\r\n\r\n!!{PREFIX}{old}"),
        format!("Content-Type: ;;;==\"\"\\(\r\n\r\n{PREFIX}{old}"),
        format!("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n{PREFIX}{old}"),
        format!("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n--b\r\n{old}"),
        format!("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n=="),
        "\r\n\r\n\r\n".to_owned(),
        String::new(),
    ];
    for message in odd {
        let out = text(&rewrite(message.as_bytes(), PREFIX, &replace));
        // Whatever the structure, no literal link to the old token survives.
        assert!(!out.contains(&format!("{PREFIX}{old}")), "{message:?}");
    }
}

#[test]
fn quoted_printable_end_cases() {
    let old = tok("old");
    let message =
        format!("Content-Transfer-Encoding: quoted-printable\r\n\r\nLink: {PREFIX}{old} =");
    let out = text(&rewrite(message.as_bytes(), PREFIX, &|_| {
        Some("gone".to_owned())
    }));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).expect("body");
    assert_eq!(qp_decoded(body), format!("Link: {PREFIX}gone "));
    assert_valid_qp(body);

    let decoded = decode_quoted_printable(b"a=3Db=\r\nc=3d=\t \r\nd==\r\ne=G1 \r\nf=");
    assert_eq!(decoded, b"a=bc=d=e=G1\r\nf");
    for sample in [
        &b"plain"[..],
        b"trailing space \r\nand tab\t\r\n",
        b"lone\rcarriage and\nline feed",
        b"==================================================================================",
        b"\xc3\xa4\xc3\xb6\xc3\xbc\xc3\xa4\xc3\xb6\xc3\xbc\xc3\xa4\xc3\xb6\xc3\xbc\xc3\xa4\xc3\xb6\xc3\xbc\xc3\xa4\xc3\xb6\xc3\xbc",
        b"\r\n\r\n",
        b"",
    ] {
        for ends_with_break in [false, true] {
            let mut encoded = Vec::new();
            encode_quoted_printable(sample, ends_with_break, &mut encoded);
            let encoded = text(&encoded);
            assert_valid_qp(&encoded);
            assert_eq!(decode_quoted_printable(encoded.as_bytes()), sample);
            assert_eq!(encoded.ends_with("\r\n"), ends_with_break || sample.ends_with(b"\r\n"));
        }
    }
}

#[test]
fn find_tokens_looks_into_encoded_text() {
    let (split, html, header, plain) = (tok("split"), tok("html"), tok("head"), tok("plain"));
    let message = format!(
        "X-Link: {PREFIX}{header}\r\n\
         Content-Type: multipart/mixed; boundary=\"{MIXED}\"\r\n\r\n\
         --{MIXED}\r\n{}\r\n\
         --{MIXED}\r\nContent-Type: text/plain\r\n\r\n{PREFIX}{plain}\r\n\
         --{MIXED}--\r\n",
        alternative(&split).replace(
            &base64_lines(html_with_link(&split).as_bytes()),
            &base64_lines(html_with_link(&html).as_bytes())
        )
    );
    assert!(!message.contains(&split));
    assert!(!message.contains(&html));
    assert_eq!(
        find_tokens(message.as_bytes(), PREFIX),
        BTreeSet::from([split, html, header, plain])
    );
}

#[test]
fn undecodable_text_parts_are_left_as_they_are() {
    let message = "Content-Type: multipart/mixed; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                   aHR0cHM6Ly9mZXJyeS5leGFtcGxlLmV1L2Qv*not base64*\r\n\
                   --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n\
                   begin 644 link.txt\r\n\
                   --b--\r\n";
    let out = rewrite(message.as_bytes(), PREFIX, &|_| Some("withheld".to_owned()));
    assert_eq!(out, message.as_bytes());
}

#[test]
fn many_parts_and_a_long_body_take_one_pass() {
    // Quadratic work here (rescanning the body per part, or per prefix candidate) would
    // not finish; linear work takes a moment.
    let (old, new) = (tok("old"), tok("new"));
    let mut message = String::from("Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n");
    for _ in 0..20_000 {
        message.push_str(&format!(
            "--p\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{PREFIX}{}=\r\n{}\r\n",
            &old[..30],
            &old[30..]
        ));
    }
    message.push_str("--p\r\n\r\n");
    message.push_str(&"https://ferry.example.eu/d".repeat(40_000));
    message.push_str("\r\n--p--\r\n");
    let out = rewrite(
        message.as_bytes(),
        PREFIX,
        &mapping(vec![(old.clone(), new.clone())]),
    );
    assert_eq!(find_tokens(&out, PREFIX), BTreeSet::from([new]));
    assert_eq!(
        find_tokens(message.as_bytes(), PREFIX),
        BTreeSet::from([old])
    );
}

#[test]
fn an_inserted_token_is_not_replaced_again() {
    let (first, second, third) = (tok("first"), tok("second"), tok("third"));
    let calls = Cell::new(0);
    let chain = mapping(vec![
        (first.clone(), second.clone()),
        (second.clone(), third.clone()),
    ]);
    let replace = |token: &str| {
        calls.set(calls.get() + 1);
        chain(token)
    };
    let message =
        format!("X-Link: {PREFIX}{first}\r\nContent-Type: text/plain\r\n\r\n{PREFIX}{first}\r\n");
    let out = text(&rewrite(message.as_bytes(), PREFIX, &replace));
    assert_eq!(out, message.replace(&first, &second));
    assert_eq!(calls.get(), 1);
}
