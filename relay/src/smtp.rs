//! The SMTP wire: replies (bounded, so a hostile peer cannot make the relay buffer without
//! end), the outbound client session that refuses to send anything but EHLO and STARTTLS in
//! clear text, and the inbound server that takes nothing before STARTTLS and AUTH.

pub mod client;
pub mod reply;
pub mod server;
