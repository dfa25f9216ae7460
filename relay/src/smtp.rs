//! The SMTP wire: replies (bounded, so a hostile peer cannot make the relay buffer without
//! end) and the outbound client session that refuses to send anything but EHLO and STARTTLS in
//! clear text.

pub mod client;
pub mod reply;
