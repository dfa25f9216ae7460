//! The add-in's files, embedded in the binary (`cargo run` needs nothing else): the icons
//! under `/addin/assets/` (drawn by `scripts/make-addin-icons`) and the task pane and launch
//! event handler under `/addin/` (`addin/pane/`, plain files written here, and
//! `addin/vendor/`, the third-party scripts exactly as `addin/package-lock.json` pins them,
//! copied by `scripts/vendor-addin`).

/// One embedded file.
pub struct Asset {
    /// The name under `/addin/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// Every asset: the XML manifest's icons, and the unified manifest's app package icons
/// (`color-192.png`, `outline-32.png`).
pub const ASSETS: [Asset; 7] = [
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
    icon(
        "color-192.png",
        include_bytes!("../../../addin/assets/color-192.png"),
    ),
    icon(
        "outline-32.png",
        include_bytes!("../../../addin/assets/outline-32.png"),
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

/// The task pane and the launch event handler, served under `/addin/`.
pub const PANE: [Asset; 8] = [
    page(
        "taskpane.html",
        include_bytes!("../../../addin/pane/taskpane.html"),
    ),
    script(
        "taskpane.js",
        include_bytes!("../../../addin/pane/taskpane.js"),
    ),
    Asset {
        name: "taskpane.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../addin/pane/taskpane.css"),
    },
    script(
        "strings.js",
        include_bytes!("../../../addin/pane/strings.js"),
    ),
    page(
        "launchevent.html",
        include_bytes!("../../../addin/pane/launchevent.html"),
    ),
    script(
        "launchevent.js",
        include_bytes!("../../../addin/pane/launchevent.js"),
    ),
    script(
        "tus.min.js",
        include_bytes!("../../../addin/vendor/tus.min.js"),
    ),
    script(
        "msal-browser.min.js",
        include_bytes!("../../../addin/vendor/msal-browser.min.js"),
    ),
];

const fn page(name: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type: "text/html; charset=utf-8",
        bytes,
    }
}

const fn script(name: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type: "text/javascript; charset=utf-8",
        bytes,
    }
}

/// The pane's file called `name`, if there is one.
pub fn pane_file(name: &str) -> Option<&'static Asset> {
    PANE.iter().find(|a| a.name == name)
}

/// The Content-Security-Policy of the pane's pages: its own files, Office.js from Microsoft's
/// CDN (required of published add-ins), requests to Ferry and to Entra ID's sign-in only,
/// framed only by Outlook on the web and the desktop hosts.
pub const PANE_CSP: &str = "default-src 'none'; \
     script-src 'self' https://appsforoffice.microsoft.com; \
     style-src 'self'; img-src 'self'; font-src 'self'; \
     connect-src 'self' https://login.microsoftonline.com; \
     frame-src https://login.microsoftonline.com; \
     base-uri 'none'; form-action 'none'; \
     frame-ancestors 'self' https://outlook.office.com https://outlook.office365.com \
     https://outlook.live.com https://*.outlook.com https://*.office.com \
     https://*.officeapps.live.com https://*.microsoft.com";
