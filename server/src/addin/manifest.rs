//! The add-in's XML manifest (Outlook mail add-in, `MailApp`) for one deployment: what a
//! Microsoft 365 admin uploads (integrated apps) or a developer sideloads. Every URL in it is
//! the deployment's own; its `Id` is derived from the public URL, so printing it again (or on
//! another instance) gives the same add-in, and two deployments never collide.
//!
//! Layout: the `VersionOverridesV1_0` block gives every Outlook the compose button that opens
//! the pane; the `VersionOverridesV1_1` inside it adds, for Outlooks with Mailbox 1.12, the
//! `OnMessageSend` Smart Alert (soft block while an upload of the draft is unfinished).

use std::fmt::Write as _;

use aws_lc_rs::digest;
use uuid::Uuid;

use super::strings::{LOCALES, Strings};

/// Bumped when the manifest changes in a way Outlook must notice (four numbers, as Office
/// requires).
pub const VERSION: &str = "1.0.0.0";
/// The pane, relative to the public URL.
pub const TASKPANE_PATH: &str = "/addin/taskpane.html";
/// The page that hosts the launch-event runtime (Outlook on the web and new Outlook).
pub const RUNTIME_PATH: &str = "/addin/launchevent.html";
/// The launch-event handler for classic Outlook on Windows, which loads the script alone.
pub const LAUNCH_EVENT_JS_PATH: &str = "/addin/launchevent.js";
/// The icon sizes the manifest names (16/32/80 on the ribbon, 64/128 in the store and lists).
pub const ICON_SIZES: [u32; 5] = [16, 32, 64, 80, 128];

/// Why a manifest cannot be made for a URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The deployment's public URL is not configured, so no URL in a manifest could be right.
    #[error("set FERRY_PUBLIC_URL (https://…) to serve the add-in manifest")]
    NoPublicUrl,
    /// Outlook loads add-ins over HTTPS only.
    #[error(
        "the public URL must start with https:// (Outlook loads add-ins over HTTPS only): {0:?}"
    )]
    NotHttps(String),
    /// No host, or a query or fragment that would end up inside every URL.
    #[error("the public URL must be https://HOST[:PORT][/PATH], without query or fragment: {0:?}")]
    Malformed(String),
}

/// The manifest of the deployment reachable at one public URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `https://host[:port][/path]`, without a trailing slash.
    base: String,
    /// `https://host[:port]`: the one `AppDomain`.
    origin: String,
}

impl Manifest {
    /// The manifest for the deployment at `public_url`.
    ///
    /// # Errors
    /// `NotHttps` or `Malformed` for URLs Outlook could not load the add-in from.
    pub fn new(public_url: &str) -> Result<Manifest, ManifestError> {
        let rest = public_url
            .trim()
            .strip_prefix("https://")
            .ok_or_else(|| ManifestError::NotHttps(public_url.to_owned()))?
            .trim_end_matches('/');
        let base = format!("https://{rest}");
        let host = rest.split('/').next().unwrap_or_default();
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid_host || base.contains(['?', '#', ' ', '"', '<', '>', '&', '\'']) {
            return Err(ManifestError::Malformed(public_url.to_owned()));
        }
        Ok(Manifest {
            base,
            origin: format!("https://{host}"),
        })
    }

    /// The add-in's id: a UUID (version 8) from SHA-256 of the public URL, the same every
    /// time for one deployment.
    pub fn id(&self) -> Uuid {
        let hash = digest::digest(
            &digest::SHA256,
            format!("ferry-addin-v1\0{}", self.base).as_bytes(),
        );
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_ref()[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL of the icon of `size` pixels.
    pub fn icon_url(&self, size: u32) -> String {
        self.url(&format!("/addin/assets/icon-{size}.png"))
    }

    /// The manifest as XML (UTF-8).
    pub fn xml(&self) -> String {
        let en = Strings::default_locale();
        let mut xml = String::with_capacity(16 * 1024);
        xml.push_str(concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<OfficeApp xmlns="http://schemas.microsoft.com/office/appforoffice/1.1""#,
            "\n",
            r#"           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#,
            "\n",
            r#"           xmlns:bt="http://schemas.microsoft.com/office/officeappbasictypes/1.0""#,
            "\n",
            r#"           xmlns:mailappor="http://schemas.microsoft.com/office/mailappversionoverrides/1.0""#,
            "\n",
            r#"           xsi:type="MailApp">"#,
            "\n",
        ));
        let _ = writeln!(xml, "  <Id>{}</Id>", self.id());
        let _ = writeln!(xml, "  <Version>{VERSION}</Version>");
        xml.push_str("  <ProviderName>Ferry</ProviderName>\n");
        let _ = writeln!(xml, "  <DefaultLocale>{}</DefaultLocale>", en.locale);
        localized(&mut xml, "  ", ("", "DisplayName", None), |s| {
            s.display_name
        });
        localized(&mut xml, "  ", ("", "Description", None), |s| s.description);
        let _ = writeln!(
            xml,
            "  <IconUrl DefaultValue=\"{}\"/>\n  <HighResolutionIconUrl DefaultValue=\"{}\"/>",
            self.icon_url(64),
            self.icon_url(128)
        );
        let _ = writeln!(xml, "  <SupportUrl DefaultValue=\"{}/\"/>", self.base);
        let _ = writeln!(
            xml,
            "  <AppDomains>\n    <AppDomain>{}</AppDomain>\n  </AppDomains>",
            self.origin
        );
        xml.push_str(concat!(
            "  <Hosts>\n    <Host Name=\"Mailbox\"/>\n  </Hosts>\n",
            "  <Requirements>\n    <Sets>\n",
            "      <Set Name=\"Mailbox\" MinVersion=\"1.1\"/>\n",
            "    </Sets>\n  </Requirements>\n",
            "  <FormSettings>\n    <Form xsi:type=\"ItemEdit\">\n      <DesktopSettings>\n",
        ));
        let _ = writeln!(
            xml,
            "        <SourceLocation DefaultValue=\"{}\"/>",
            self.url(TASKPANE_PATH)
        );
        xml.push_str(concat!(
            "      </DesktopSettings>\n    </Form>\n  </FormSettings>\n",
            "  <Permissions>ReadWriteItem</Permissions>\n",
            "  <Rule xsi:type=\"RuleCollection\" Mode=\"Or\">\n",
            "    <Rule xsi:type=\"ItemIs\" ItemType=\"Message\" FormType=\"Edit\"/>\n",
            "  </Rule>\n",
            "  <DisableEntityHighlighting>false</DisableEntityHighlighting>\n",
            "  <VersionOverrides xmlns=\"http://schemas.microsoft.com/office/mailappversionoverrides\" xsi:type=\"VersionOverridesV1_0\">\n",
        ));
        self.overrides(&mut xml, "    ", false);
        xml.push_str("    <VersionOverrides xmlns=\"http://schemas.microsoft.com/office/mailappversionoverrides/1.1\" xsi:type=\"VersionOverridesV1_1\">\n");
        self.overrides(&mut xml, "      ", true);
        xml.push_str("    </VersionOverrides>\n  </VersionOverrides>\n</OfficeApp>\n");
        xml
    }

    /// The body of one VersionOverrides block: requirements, the compose button (and, with
    /// `launch_event`, the runtime and the `OnMessageSend` Smart Alert), and the resources.
    fn overrides(&self, xml: &mut String, indent: &str, launch_event: bool) {
        let mailbox = if launch_event { "1.12" } else { "1.3" };
        let _ = writeln!(
            xml,
            "{indent}<Requirements>\n{indent}  <bt:Sets DefaultMinVersion=\"{mailbox}\">\n\
             {indent}    <bt:Set Name=\"Mailbox\"/>\n{indent}  </bt:Sets>\n{indent}</Requirements>"
        );
        let _ = writeln!(
            xml,
            "{indent}<Hosts>\n{indent}  <Host xsi:type=\"MailHost\">"
        );
        let inner = format!("{indent}    ");
        if launch_event {
            let _ = writeln!(
                xml,
                "{inner}<Runtimes>\n\
                 {inner}  <Runtime resid=\"Ferry.Runtime.Url\">\n\
                 {inner}    <Override type=\"javascript\" resid=\"Ferry.LaunchEvent.Js\"/>\n\
                 {inner}  </Runtime>\n\
                 {inner}</Runtimes>"
            );
        }
        let _ = writeln!(xml, "{inner}<DesktopFormFactor>");
        let _ = writeln!(xml, "{inner}  <FunctionFile resid=\"Ferry.Runtime.Url\"/>");
        let p = format!("{inner}  ");
        let _ = writeln!(
            xml,
            "{p}<ExtensionPoint xsi:type=\"MessageComposeCommandSurface\">\n\
             {p}  <OfficeTab id=\"TabDefault\">\n\
             {p}    <Group id=\"Ferry.Compose.Group\">\n\
             {p}      <Label resid=\"Ferry.Group.Label\"/>\n\
             {p}      <Control xsi:type=\"Button\" id=\"Ferry.Compose.OpenPane\">\n\
             {p}        <Label resid=\"Ferry.Button.Label\"/>\n\
             {p}        <Supertip>\n\
             {p}          <Title resid=\"Ferry.Button.Label\"/>\n\
             {p}          <Description resid=\"Ferry.Button.Tooltip\"/>\n\
             {p}        </Supertip>\n\
             {p}        <Icon>\n\
             {p}          <bt:Image size=\"16\" resid=\"Ferry.Icon.16\"/>\n\
             {p}          <bt:Image size=\"32\" resid=\"Ferry.Icon.32\"/>\n\
             {p}          <bt:Image size=\"80\" resid=\"Ferry.Icon.80\"/>\n\
             {p}        </Icon>\n\
             {p}        <Action xsi:type=\"ShowTaskpane\">\n\
             {p}          <SourceLocation resid=\"Ferry.Taskpane.Url\"/>\n\
             {p}        </Action>\n\
             {p}      </Control>\n\
             {p}    </Group>\n\
             {p}  </OfficeTab>\n\
             {p}</ExtensionPoint>"
        );
        if launch_event {
            let _ = writeln!(
                xml,
                "{p}<ExtensionPoint xsi:type=\"LaunchEvent\">\n\
                 {p}  <LaunchEvents>\n\
                 {p}    <LaunchEvent Type=\"OnMessageSend\" FunctionName=\"onMessageSendHandler\" SendMode=\"SoftBlock\"/>\n\
                 {p}  </LaunchEvents>\n\
                 {p}  <SourceLocation resid=\"Ferry.Runtime.Url\"/>\n\
                 {p}</ExtensionPoint>"
            );
        }
        let _ = writeln!(
            xml,
            "{inner}</DesktopFormFactor>\n{indent}  </Host>\n{indent}</Hosts>"
        );
        self.resources(xml, indent);
    }

    fn resources(&self, xml: &mut String, indent: &str) {
        let r = format!("{indent}  ");
        let _ = writeln!(xml, "{indent}<Resources>\n{r}<bt:Images>");
        for size in [16, 32, 80] {
            let _ = writeln!(
                xml,
                "{r}  <bt:Image id=\"Ferry.Icon.{size}\" DefaultValue=\"{}\"/>",
                self.icon_url(size)
            );
        }
        let _ = writeln!(xml, "{r}</bt:Images>\n{r}<bt:Urls>");
        for (id, path) in [
            ("Ferry.Taskpane.Url", TASKPANE_PATH),
            ("Ferry.Runtime.Url", RUNTIME_PATH),
            ("Ferry.LaunchEvent.Js", LAUNCH_EVENT_JS_PATH),
        ] {
            let _ = writeln!(
                xml,
                "{r}  <bt:Url id=\"{id}\" DefaultValue=\"{}\"/>",
                self.url(path)
            );
        }
        let _ = writeln!(xml, "{r}</bt:Urls>\n{r}<bt:ShortStrings>");
        let string = |id| ("bt:", "String", Some(id));
        let item = format!("{r}  ");
        localized(xml, &item, string("Ferry.Group.Label"), |s| s.group_label);
        localized(xml, &item, string("Ferry.Button.Label"), |s| s.button_label);
        let _ = writeln!(xml, "{r}</bt:ShortStrings>\n{r}<bt:LongStrings>");
        localized(xml, &item, string("Ferry.Button.Tooltip"), |s| {
            s.button_tooltip
        });
        let _ = writeln!(xml, "{r}</bt:LongStrings>\n{indent}</Resources>");
    }
}

/// A string in every locale: `<{tag}{id} DefaultValue="…">` with one `<{prefix}Override>`
/// per other locale. `prefix` is `bt:` inside `Resources` (where `id` names the string) and
/// empty for the top-level `DisplayName` and `Description`.
fn localized(
    xml: &mut String,
    indent: &str,
    (prefix, tag, id): (&str, &str, Option<&str>),
    pick: fn(&Strings) -> &'static str,
) {
    let en = Strings::default_locale();
    let id = id.map(|id| format!(" id=\"{id}\"")).unwrap_or_default();
    let _ = writeln!(
        xml,
        "{indent}<{prefix}{tag}{id} DefaultValue=\"{}\">",
        escape(pick(en))
    );
    for strings in LOCALES.iter().filter(|s| s.locale != en.locale) {
        let _ = writeln!(
            xml,
            "{indent}  <{prefix}Override Locale=\"{}\" Value=\"{}\"/>",
            strings.locale,
            escape(pick(strings))
        );
    }
    let _ = writeln!(xml, "{indent}</{prefix}{tag}>");
}

/// Escapes text for an XML attribute value.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_without_query_make_a_manifest() {
        assert!(Manifest::new("https://files.example.eu").is_ok());
        assert!(Manifest::new("https://files.example.eu:8443/ferry/").is_ok());
        assert_eq!(
            Manifest::new("http://files.example.eu"),
            Err(ManifestError::NotHttps("http://files.example.eu".into()))
        );
        for bad in [
            "https://",
            "https://a.eu/?x=1",
            "https://a.eu/#x",
            "https://a b.eu",
        ] {
            assert!(
                matches!(Manifest::new(bad), Err(ManifestError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_id_is_stable_per_deployment_and_differs_between_them() {
        let a = Manifest::new("https://files.example.eu/").expect("a");
        let same = Manifest::new("https://files.example.eu").expect("same");
        let other = Manifest::new("https://files.example.nl").expect("other");
        assert_eq!(a.id(), same.id());
        assert_ne!(a.id(), other.id());
        assert_eq!(a.id().get_version_num(), 8);
    }

    #[test]
    fn every_url_is_the_deployments_and_the_app_domain_is_its_origin() {
        let xml = Manifest::new("https://files.example.eu:8443/ferry")
            .expect("manifest")
            .xml();
        assert!(xml.contains("<AppDomain>https://files.example.eu:8443</AppDomain>"));
        assert!(xml.contains("https://files.example.eu:8443/ferry/addin/taskpane.html"));
        for url in xml.split("\"https://").skip(1) {
            assert!(url.starts_with("files.example.eu:8443/ferry/"), "{url}");
        }
    }
}
