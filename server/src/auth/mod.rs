//! Who may act: bearer secrets (API keys and link tokens), roles, the caller of a request
//! with the ownership rule, API keys as a domain (create, revoke, authenticate), and the
//! validation of Entra ID tokens (`entra`, for the add-in's sign-in).
//!
//! The leaves never import this file; it only re-exports the names most callers need.

pub mod api_keys;
pub mod caller;
pub mod entra;
pub mod role;
pub mod secret;

pub use caller::{Caller, Forbidden, Intent};
pub use role::Role;
pub use secret::{
    API_KEY_PREFIX, MintedSecret, PresentedSecret, RandomError, mint_api_key, mint_link_token,
    parse_api_key, parse_link_token,
};
