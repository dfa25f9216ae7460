//! The roles an API key can have. A leaf: the database stores roles and the domain checks
//! them, so both name this file and neither reaches into the other for it.

/// Who may do what within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sets policy, reads the audit log, and may also send.
    Admin,
    /// Uploads files and creates shares.
    Sender,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sender => "sender",
        }
    }

    /// Reads the stored spelling; anything but `admin` is the least privileged role.
    pub fn parse(text: &str) -> Role {
        if text == "admin" {
            Role::Admin
        } else {
            Role::Sender
        }
    }
}
