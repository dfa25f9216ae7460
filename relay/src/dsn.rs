//! Delivery status notifications (RFC 3464) for recipients the relay gave up on: which
//! recipient could not be reached securely and why — never the message's content, not even
//! its headers (a subject line can name a patient).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// One recipient the relay could not deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The recipient.
    pub recipient: String,
    /// RFC 3463 status, e.g. `5.7.10` (no secure delivery possible) or `5.4.7` (held too
    /// long).
    pub status: String,
    /// Why, in one line (the last attempt's error).
    pub reason: String,
}

/// What the report is about.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// This relay's host name (`Reporting-MTA`, the DSN's From and Message-ID).
    pub hostname: &'a str,
    /// The original sender, who gets the report.
    pub to: &'a str,
    /// The original Message-ID.
    pub message_id: &'a str,
    /// When the original arrived.
    pub arrived: OffsetDateTime,
    /// When the report is made.
    pub now: OffsetDateTime,
    /// A unique token for this report's Message-ID and MIME boundary.
    pub token: &'a str,
    /// The recipients given up on.
    pub failures: &'a [Failure],
}

fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect()
}

/// The report as a message: CRLF line ends, ready to queue with a null sender.
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let date = |t: OffsetDateTime| t.format(&Rfc2822).unwrap_or_default();
    let boundary = format!("ferry-dsn-{}", report.token);
    let host = clean(report.hostname);
    let mut listed = String::new();
    for failure in report.failures {
        listed.push_str(&format!(
            "  {}\r\n    {}\r\n",
            clean(&failure.recipient),
            clean(&failure.reason)
        ));
    }
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered mail: no secure route to {count} recipient{plural}\r\n\
         Date: {date}\r\n\
         Message-ID: <dsn-{token}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n \
         boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Your message {message_id} could not be delivered to:\r\n\
         \r\n\
         {listed}\
         \r\n\
         This relay sends mail only over an encrypted connection to a server whose identity\r\n\
         it can verify, and never falls back to an unprotected one. It kept trying until the\r\n\
         end of its hold window. The message itself is not attached.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         Original-Envelope-Id: {message_id}\r\n\
         Arrival-Date: {arrived}\r\n",
        to = clean(report.to),
        count = report.failures.len(),
        plural = if report.failures.len() == 1 { "" } else { "s" },
        date = date(report.now),
        token = clean(report.token),
        message_id = clean(report.message_id),
        arrived = date(report.arrived),
    );
    for failure in report.failures {
        out.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\n\
             Action: failed\r\n\
             Status: {}\r\n\
             Diagnostic-Code: smtp; {}\r\n\
             Last-Attempt-Date: {}\r\n",
            clean(&failure.recipient),
            clean(&failure.status),
            clean(&failure.reason),
            date(report.now),
        ));
    }
    out.push_str(&format!("\r\n--{boundary}--\r\n"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_report_names_each_recipient_and_reason_and_is_canonical() {
        let failures = [Failure {
            recipient: "bob@example.test".into(),
            status: "5.7.10".into(),
            reason: "the MX does not offer STARTTLS;\r\nnothing was sent".into(),
        }];
        let bytes = build(&Report {
            hostname: "relay.test",
            to: "ward@hospital.test",
            message_id: "<m1@hospital.test>",
            arrived: datetime!(2026-12-04 10:00 UTC),
            now: datetime!(2026-12-06 10:00 UTC),
            token: "abc",
            failures: &failures,
        });
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.contains("report-type=delivery-status"));
        assert!(text.contains(
            "Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.7.10\r\n"
        ));
        assert!(
            text.contains(
                "Diagnostic-Code: smtp; the MX does not offer STARTTLS;  nothing was sent"
            )
        );
        assert!(
            !bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "bare LF"
        );
        assert!(text.ends_with("--ferry-dsn-abc--\r\n"));
    }
}
