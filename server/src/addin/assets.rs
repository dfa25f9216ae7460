//! The add-in's files Ferry serves under `/addin/assets/`, embedded in the binary (`cargo run`
//! needs nothing else). The icons are drawn by `scripts/make-addin-icons`.

/// One embedded file.
pub struct Asset {
    /// The name under `/addin/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// Every asset.
pub const ASSETS: [Asset; 5] = [
    icon(
        "icon-16.png",
        include_bytes!("../../../addin/assets/icon-16.png"),
    ),
    icon(
        "icon-32.png",
        include_bytes!("../../../addin/assets/icon-32.png"),
    ),
    icon(
        "icon-64.png",
        include_bytes!("../../../addin/assets/icon-64.png"),
    ),
    icon(
        "icon-80.png",
        include_bytes!("../../../addin/assets/icon-80.png"),
    ),
    icon(
        "icon-128.png",
        include_bytes!("../../../addin/assets/icon-128.png"),
    ),
];

const fn icon(name: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type: "image/png",
        bytes,
    }
}

/// The asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}
