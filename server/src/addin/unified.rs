//! The add-in's unified manifest for Microsoft 365 (JSON, schema 1.24): the same add-in as the
//! XML manifest — same id, same URLs, the compose button that opens the pane and the
//! `messageSending` soft block — for admins who deploy apps as Teams app packages
//! (`manifest.json` zipped with `color.png` 192×192 and `outline.png` 32×32, served by Ferry
//! under `/addin/assets/color-192.png` and `outline-32.png`).

use serde_json::{Value, json};

use super::manifest::{LAUNCH_EVENT_JS_PATH, Manifest, RUNTIME_PATH, TASKPANE_PATH};
use super::strings::Strings;

/// The schema version written (unified manifests for Outlook are supported from 1.17 on).
pub const MANIFEST_VERSION: &str = "1.24";
/// The app's version (three numbers, as the unified manifest requires); kept in step with
/// the XML manifest's `VERSION`.
pub const APP_VERSION: &str = "1.0.0";

/// The short description (≤ 80 characters; the full one is the XML manifest's).
pub const SHORT_DESCRIPTION: &str = "Send large files safely from Outlook, as one secure link.";

/// What Entra sign-in adds to the manifest: the app registration Outlook fetches SSO tokens
/// for.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The app registration's client id.
    pub client_id: String,
    /// Its application ID URI (`api://host/<client id>`).
    pub resource: String,
}

impl Manifest {
    /// The unified JSON manifest; `sign_in` adds `webApplicationInfo` (Office SSO).
    pub fn unified(&self, sign_in: Option<&SignIn>) -> Value {
        let en = Strings::default_locale();
        let host = self
            .url("")
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let icons = |sizes: &[u32]| -> Vec<Value> {
            sizes
                .iter()
                .map(|&size| json!({ "size": size, "url": self.icon_url(size) }))
                .collect()
        };
        let mailbox = |version: &str| json!({ "capabilities": [{ "name": "Mailbox", "minVersion": version }] });
        let mut manifest = json!({
            "$schema": format!(
                "https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
            ),
            "manifestVersion": MANIFEST_VERSION,
            "version": APP_VERSION,
            "id": self.id().to_string(),
            "developer": {
                "name": "Ferry",
                "websiteUrl": self.url("/"),
                "privacyUrl": self.url("/"),
                "termsOfUseUrl": self.url("/"),
            },
            "name": { "short": en.display_name, "full": en.display_name },
            "description": { "short": SHORT_DESCRIPTION, "full": en.description },
            "icons": { "outline": "outline.png", "color": "color.png" },
            "accentColor": "#0B6E6E",
            "validDomains": [host],
            "authorization": {
                "permissions": {
                    "resourceSpecific": [{ "name": "MailboxItem.ReadWrite.User", "type": "Delegated" }]
                }
            },
            "extensions": [{
                "requirements": {
                    "scopes": ["mail"],
                    "capabilities": [{ "name": "Mailbox", "minVersion": "1.3" }],
                },
                "runtimes": [
                    {
                        "requirements": mailbox("1.3"),
                        "id": "Ferry.Runtime.Pane",
                        "type": "general",
                        "code": { "page": self.url(TASKPANE_PATH) },
                        "lifetime": "short",
                        "actions": [{ "id": "Ferry.Action.OpenPane", "type": "openPage" }],
                    },
                    {
                        "requirements": mailbox("1.12"),
                        "id": "Ferry.Runtime.LaunchEvent",
                        "type": "general",
                        "code": {
                            "page": self.url(RUNTIME_PATH),
                            "script": self.url(LAUNCH_EVENT_JS_PATH),
                        },
                        "lifetime": "short",
                        "actions": [{ "id": "onMessageSendHandler", "type": "executeFunction" }],
                    },
                ],
                "ribbons": [{
                    "contexts": ["mailCompose"],
                    "tabs": [{
                        "builtInTabId": "TabDefault",
                        "groups": [{
                            "id": "Ferry.Compose.Group",
                            "label": en.group_label,
                            "icons": icons(&[16, 32, 80]),
                            "controls": [{
                                "id": "Ferry.Compose.OpenPane",
                                "type": "button",
                                "label": en.button_label,
                                "icons": icons(&[16, 32, 80]),
                                "supertip": { "title": en.button_label, "description": en.button_tooltip },
                                "actionId": "Ferry.Action.OpenPane",
                            }],
                        }],
                    }],
                }],
                "autoRunEvents": [{
                    "requirements": mailbox("1.12"),
                    "events": [{
                        "type": "messageSending",
                        "actionId": "onMessageSendHandler",
                        "options": { "sendMode": "softBlock" },
                    }],
                }],
            }],
        });
        if let Some(sign_in) = sign_in {
            manifest["webApplicationInfo"] = json!({
                "id": sign_in.client_id,
                "resource": sign_in.resource,
            });
        }
        manifest
    }
}
