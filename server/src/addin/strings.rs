//! The add-in's words in the manifest, one entry per language Ferry speaks. The pane has its
//! own catalogue; these are the few strings Outlook shows before the pane opens.

/// The manifest's strings in one locale.
#[derive(Debug)]
pub struct Strings {
    /// Office locale name (`ll-CC`).
    pub locale: &'static str,
    /// The add-in's name in lists and the store (≤ 125 characters).
    pub display_name: &'static str,
    /// What it does, in the store and the admin centre (≤ 250 characters).
    pub description: &'static str,
    /// The ribbon group (≤ 125 characters, shown short).
    pub group_label: &'static str,
    /// The compose button (short: it sits on the ribbon).
    pub button_label: &'static str,
    /// The button's tooltip.
    pub button_tooltip: &'static str,
}

/// Every locale, the default first.
pub const LOCALES: [Strings; 4] = [
    Strings {
        locale: "en-US",
        display_name: "Ferry",
        description: "Send large files safely from Outlook: encrypted, stored in Europe, one \
                      link per recipient, deleted when your organisation's retention ends.",
        group_label: "Ferry",
        button_label: "Send large files",
        button_tooltip: "Upload files to your organisation's Ferry and insert a secure download \
                         link into this message.",
    },
    Strings {
        locale: "nl-NL",
        display_name: "Ferry",
        description: "Verstuur grote bestanden veilig vanuit Outlook: versleuteld, opgeslagen \
                      in Europa, één link per ontvanger, verwijderd zodra de bewaartermijn van \
                      uw organisatie verloopt.",
        group_label: "Ferry",
        button_label: "Grote bestanden versturen",
        button_tooltip: "Upload bestanden naar de Ferry van uw organisatie en voeg een veilige \
                         downloadlink in dit bericht in.",
    },
    Strings {
        locale: "de-DE",
        display_name: "Ferry",
        description: "Große Dateien sicher aus Outlook senden: verschlüsselt, in Europa \
                      gespeichert, ein Link pro Empfänger, gelöscht, wenn die Aufbewahrungsfrist \
                      Ihrer Organisation endet.",
        group_label: "Ferry",
        button_label: "Große Dateien senden",
        button_tooltip: "Dateien in das Ferry Ihrer Organisation hochladen und einen sicheren \
                         Download-Link in diese Nachricht einfügen.",
    },
    Strings {
        locale: "fr-FR",
        display_name: "Ferry",
        description: "Envoyez de gros fichiers en toute sécurité depuis Outlook : chiffrés, \
                      stockés en Europe, un lien par destinataire, supprimés à la fin de la \
                      durée de conservation de votre organisation.",
        group_label: "Ferry",
        button_label: "Envoyer de gros fichiers",
        button_tooltip: "Téléversez des fichiers vers le Ferry de votre organisation et insérez \
                         un lien de téléchargement sécurisé dans ce message.",
    },
];

impl Strings {
    /// The manifest's default locale (English).
    pub fn default_locale() -> &'static Strings {
        &LOCALES[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Office's limits: short strings ≤ 125 characters, long ones and descriptions ≤ 250.
    #[test]
    fn every_string_fits_offices_limits() {
        for s in &LOCALES {
            for short in [s.display_name, s.group_label, s.button_label] {
                assert!(short.chars().count() <= 125, "{}: {short}", s.locale);
            }
            for long in [s.description, s.button_tooltip] {
                assert!(long.chars().count() <= 250, "{}: {long}", s.locale);
            }
        }
    }
}
