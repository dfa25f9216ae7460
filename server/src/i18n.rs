//! The recipient pages' languages: one catalogue of strings per language (`server/i18n/*.toml`,
//! compiled into the binary), the choice of language from `Accept-Language` or the page's
//! switch, and dates, sizes and "in 5 days" written the way each language writes them.
//!
//! Recipients are often people who never asked for a mail from this sender; a page in their
//! own language, with their own date format, is part of looking trustworthy.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use time::OffsetDateTime;

/// A language the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    /// English (the fallback).
    En,
    /// Dutch.
    Nl,
    /// German.
    De,
    /// French.
    Fr,
}

/// Every locale, in the order the switch lists them.
pub const LOCALES: [Locale; 4] = [Locale::En, Locale::Nl, Locale::De, Locale::Fr];

impl Locale {
    /// The BCP 47 tag (`lang` attribute, `?lang=` value).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Nl => "nl",
            Locale::De => "de",
            Locale::Fr => "fr",
        }
    }

    /// The locale a language tag names (`nl`, `nl-BE`, `DE-at`…), if the pages speak it.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        LOCALES.into_iter().find(|l| l.tag() == primary)
    }

    /// The locale a request asks for: `?lang=` when it names one, else the best of
    /// `Accept-Language` (highest q, then first listed), else English.
    pub fn choose(query_lang: Option<&str>, accept_language: Option<&str>) -> Locale {
        if let Some(locale) = query_lang.and_then(Locale::from_tag) {
            return locale;
        }
        let Some(header) = accept_language else {
            return Locale::En;
        };
        let mut best: Option<(u16, Locale)> = None;
        // A client controls the header: look at a bounded number of entries only.
        for entry in header.split(',').take(32) {
            let mut parts = entry.split(';');
            let Some(locale) = parts.next().and_then(Locale::from_tag) else {
                continue;
            };
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, parse_quality);
            if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, locale));
            }
        }
        best.map_or(Locale::En, |(_, locale)| locale)
    }

    fn catalogue(self) -> &'static BTreeMap<String, String> {
        match self {
            Locale::En => &EN,
            Locale::Nl => &NL,
            Locale::De => &DE,
            Locale::Fr => &FR,
        }
    }

    /// The string for `key`: this language's, else English's, else the key itself (never
    /// reached: a test requires every key in every language).
    pub fn text(self, key: &str) -> &'static str {
        self.catalogue()
            .get(key)
            .or_else(|| EN.get(key))
            .map_or("", String::as_str)
    }

    /// The string for `key` with its `{name}` placeholders filled in.
    pub fn fill(self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.text(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// A calendar date, e.g. "8 December 2026", "8. Dezember 2026" (UTC).
    pub fn date(self, at: OffsetDateTime) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        let month = self.text(&format!("month.{}", u8::from(at.month())));
        self.fill(
            "date.pattern",
            &[
                ("day", &at.day().to_string()),
                ("month", month),
                ("year", &at.year().to_string()),
            ],
        )
    }

    /// How long until `at`, from `now`: "in 5 days", "nog 3 uur"…
    pub fn time_left(self, now: OffsetDateTime, at: OffsetDateTime) -> String {
        let left = at - now;
        // Days to the nearest (a 7-day share reads "in 7 days" a minute after it was made).
        let days = if left.whole_days() >= 1 {
            (left + time::Duration::hours(12)).whole_days()
        } else {
            0
        };
        let hours = left.whole_hours();
        let (key, count) = if days >= 1 {
            ("page.expires_in_days", days)
        } else if hours >= 1 {
            ("page.expires_in_hours", hours)
        } else {
            return self.text("page.expires_soon").to_owned();
        };
        let form = if count == 1 { "one" } else { "other" };
        self.fill(&format!("{key}.{form}"), &[("count", &count.to_string())])
    }

    /// A size in binary units with this language's decimal mark: "1.5 MiB", "1,5 MiB".
    pub fn size(self, bytes: u64) -> String {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut value = bytes as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            return format!("{bytes} B");
        }
        let shown = format!("{value:.1}").replace('.', self.text("number.decimal"));
        format!("{shown}\u{a0}{}", UNITS[unit])
    }
}

/// `q=0.8` as thousandths; anything unparsable is 0 (ignored).
fn parse_quality(text: &str) -> u16 {
    text.trim()
        .parse::<f32>()
        .ok()
        .filter(|q| (0.0..=1.0).contains(q))
        .map_or(0, |q| (q * 1000.0).round() as u16)
}

fn parse(source: &str) -> BTreeMap<String, String> {
    // The catalogues are part of the binary and checked by tests; a broken one is a build
    // mistake, shown as missing strings rather than a crash.
    toml::from_str(source).unwrap_or_default()
}

static EN: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| parse(include_str!("../i18n/en.toml")));
static NL: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| parse(include_str!("../i18n/nl.toml")));
static DE: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| parse(include_str!("../i18n/de.toml")));
static FR: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| parse(include_str!("../i18n/fr.toml")));

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;

    use super::*;

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_language_has_every_key_with_the_same_placeholders() {
        let english = Locale::En.catalogue();
        assert!(english.len() > 40, "the English catalogue parsed");
        for locale in LOCALES {
            let catalogue = locale.catalogue();
            let missing: Vec<_> = english
                .keys()
                .filter(|k| !catalogue.contains_key(*k))
                .collect();
            let extra: Vec<_> = catalogue
                .keys()
                .filter(|k| !english.contains_key(*k))
                .collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, not in English {extra:?}",
                locale.tag()
            );
            for (key, text) in catalogue {
                assert!(!text.trim().is_empty(), "{}: {key} is empty", locale.tag());
                assert_eq!(
                    placeholders(text),
                    placeholders(&english[key]),
                    "{}: {key}",
                    locale.tag()
                );
            }
        }
    }

    #[test]
    fn the_language_comes_from_the_switch_then_accept_language() {
        assert_eq!(Locale::choose(None, None), Locale::En);
        assert_eq!(
            Locale::choose(None, Some("nl-NL,nl;q=0.9,en;q=0.8")),
            Locale::Nl
        );
        assert_eq!(Locale::choose(None, Some("en;q=0.5, de-AT")), Locale::De);
        assert_eq!(Locale::choose(None, Some("es, fr;q=0.3")), Locale::Fr);
        assert_eq!(Locale::choose(None, Some("es, it")), Locale::En);
        assert_eq!(Locale::choose(None, Some("fr;q=0, de;q=0.1")), Locale::De);
        assert_eq!(Locale::choose(None, Some("fr;q=garbage")), Locale::En);
        assert_eq!(Locale::choose(Some("fr"), Some("de")), Locale::Fr);
        assert_eq!(Locale::choose(Some("xx"), Some("de")), Locale::De);
    }

    #[test]
    fn dates_sizes_and_time_left_follow_the_language() {
        let at = datetime!(2026-12-08 05:37 UTC);
        assert_eq!(Locale::En.date(at), "8 December 2026");
        assert_eq!(Locale::Nl.date(at), "8 december 2026");
        assert_eq!(Locale::De.date(at), "8. Dezember 2026");
        assert_eq!(Locale::Fr.date(at), "8 décembre 2026");
        assert_eq!(Locale::En.size(1536), "1.5\u{a0}KiB");
        assert_eq!(Locale::De.size(1536), "1,5\u{a0}KiB");
        assert_eq!(Locale::Fr.size(12), "12 B");
        let now = datetime!(2026-12-03 04:00 UTC);
        assert_eq!(Locale::En.time_left(now, at), "in 5 days");
        assert_eq!(Locale::Nl.time_left(now, at), "nog 5 dagen");
        assert_eq!(
            Locale::De.time_left(now, datetime!(2026-12-04 05:00 UTC)),
            "noch 1 Tag"
        );
        assert_eq!(
            Locale::Fr.time_left(now, datetime!(2026-12-03 07:00 UTC)),
            "encore 3 heures"
        );
        assert_eq!(
            Locale::En.time_left(now, datetime!(2026-12-03 04:10 UTC)),
            "in less than an hour"
        );
    }
}
