//! The Outlook add-in's server side: the manifest of this deployment (XML, and the unified
//! JSON manifest) and the files it names.
//! Nothing here touches the database: the pane talks to the same API as every other client.

pub mod assets;
pub mod manifest;
pub mod strings;
pub mod unified;

pub use manifest::{Manifest, ManifestError};
