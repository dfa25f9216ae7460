//! Who may act: bearer secrets (API keys and link tokens), roles, the caller of a request
//! with the ownership rule, API keys as a domain (create, revoke, authenticate), Entra ID
//! tokens (`entra`) and the people who sign in with them (`people`, for the Outlook
//! add-in), and the one door that takes either kind of bearer credential (`bearer`).
//!
//! The leaves never import this file; it only re-exports the names most callers need.

pub mod api_keys;
pub mod bearer;
pub mod caller;
pub mod entra;
pub mod people;
pub mod role;
pub mod secret;

pub use caller::{Caller, Forbidden, Intent, PrincipalKind};
pub use role::Role;
pub use secret::{
    API_KEY_PREFIX, MintedSecret, PresentedSecret, RandomError, mint_api_key, mint_link_token,
    parse_api_key, parse_link_token,
};
