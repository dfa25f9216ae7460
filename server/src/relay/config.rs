//! `ferry relay serve`'s settings: the environment (`FERRY_RELAY_*`), else the `[relay]` table
//! of the service's `ferry.toml` (the same names, lower case, without `FERRY_RELAY_`), else the
//! defaults. The ones marked "test knob" exist so the suite can run the relay against its own
//! DNS, MX and CA; in production they stay unset.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// SMTP listener (`FERRY_RELAY_LISTEN`, default 127.0.0.1:2525; port 0: any).
    pub listen: SocketAddr,
    /// This relay's name: greeting, EHLO, added Message-IDs (`FERRY_RELAY_HOSTNAME`).
    pub hostname: String,
    /// PEM certificate chain and key for STARTTLS (`FERRY_RELAY_TLS_CERT`, `_KEY`); without
    /// them a self-signed pair is generated into the data directory, with a warning.
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// Test knob: one DNS server for every lookup (`FERRY_RELAY_RESOLVER`, ip:port).
    pub resolver: Option<SocketAddr>,
    /// Test knob: the port of every MX (`FERRY_RELAY_MX_PORT`, default 25).
    pub mx_port: u16,
    /// Test knob: the port of MTA-STS policy servers (`FERRY_RELAY_MTA_STS_PORT`, 443).
    pub mta_sts_port: u16,
    /// Test knob: trust these roots instead of the WebPKI set (`FERRY_RELAY_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// How long undeliverable recipients are retried (`FERRY_RELAY_HOLD_SECONDS`, 2 days).
    pub hold: Duration,
    /// The first retry's delay, doubling up to an hour (`FERRY_RELAY_RETRY_SECONDS`, 60).
    pub retry_base: Duration,
    /// Largest message accepted (`FERRY_RELAY_MAX_MESSAGE_BYTES`, 50 MB).
    pub max_message_bytes: usize,
    /// The name Microsoft 365 connectors' client certificates carry
    /// (`FERRY_RELAY_CONNECTOR_CERT_NAME`, `*.mail.protection.outlook.com`; `off`: no
    /// connectors, AUTH only).
    pub connector_cert_name: Option<String>,
    /// Roots client certificates must chain to (`FERRY_RELAY_CLIENT_CA_FILE`; the WebPKI set
    /// when unset — Microsoft's are publicly issued).
    pub client_ca_file: Option<PathBuf>,
}

/// The keys of the `[relay]` table: `FERRY_RELAY_<KEY>` in the environment.
const FILE_KEYS: &[&str] = &[
    "listen",
    "hostname",
    "tls_cert",
    "tls_key",
    "resolver",
    "mx_port",
    "mta_sts_port",
    "ca_file",
    "hold_seconds",
    "retry_seconds",
    "max_message_bytes",
    "connector_cert_name",
    "client_ca_file",
];

impl RelayConfig {
    /// Reads the settings from the process environment and the service's `ferry.toml`.
    ///
    /// # Errors
    /// As [`RelayConfig::from_sources`].
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(|key| std::env::var(key).ok())
    }

    /// Reads the settings with `env`, then the `[relay]` table of the configuration file it
    /// names (`FERRY_CONFIG`, else `./ferry.toml`).
    ///
    /// # Errors
    /// The file is unreadable, its `[relay]` table has an unknown key or a value that is not
    /// a string or number, or a value does not parse.
    pub fn from_sources(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = crate::config::file_table(&env, "relay")?.unwrap_or_default();
        for (key, value) in &table {
            if !FILE_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "[relay]",
                    message: format!("unknown key {key:?} (known: {})", FILE_KEYS.join(", ")),
                });
            }
            if !(value.is_str() || value.is_integer()) {
                return Err(ConfigError::Invalid {
                    key: "[relay]",
                    message: format!("{key} must be a string or a number"),
                });
            }
        }
        Self::from_env(|name| {
            env(name).or_else(|| {
                let key = name.strip_prefix("FERRY_RELAY_")?.to_ascii_lowercase();
                match table.get(&key)? {
                    toml::Value::String(text) => Some(text.clone()),
                    other => Some(other.to_string()),
                }
            })
        })
    }

    /// Reads the settings with `env` alone.
    ///
    /// # Errors
    /// A value that does not parse, naming its key.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parsed<T: std::str::FromStr>(
            env: &impl Fn(&str) -> Option<String>,
            key: &'static str,
            default: T,
        ) -> Result<T, ConfigError> {
            match env(key).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(text) => text.trim().parse().map_err(|_| ConfigError::Invalid {
                    key,
                    message: format!("{text:?} does not parse"),
                }),
            }
        }
        let listen = parsed(
            &env,
            "FERRY_RELAY_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 2525)),
        )?;
        let hostname = env("FERRY_RELAY_HOSTNAME")
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let tls_cert = match (env("FERRY_RELAY_TLS_CERT"), env("FERRY_RELAY_TLS_KEY")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "FERRY_RELAY_TLS_CERT",
                    message: "set both FERRY_RELAY_TLS_CERT and FERRY_RELAY_TLS_KEY".to_owned(),
                });
            }
        };
        let resolver = match env("FERRY_RELAY_RESOLVER") {
            Some(text) => Some(text.trim().parse().map_err(|_| ConfigError::Invalid {
                key: "FERRY_RELAY_RESOLVER",
                message: format!("{text:?} is not ip:port"),
            })?),
            None => None,
        };
        Ok(Self {
            listen,
            hostname,
            tls_cert,
            resolver,
            mx_port: parsed(&env, "FERRY_RELAY_MX_PORT", 25)?,
            mta_sts_port: parsed(&env, "FERRY_RELAY_MTA_STS_PORT", 443)?,
            ca_file: env("FERRY_RELAY_CA_FILE").map(PathBuf::from),
            hold: Duration::from_secs(parsed(&env, "FERRY_RELAY_HOLD_SECONDS", 2 * 86_400)?),
            retry_base: Duration::from_secs(parsed(&env, "FERRY_RELAY_RETRY_SECONDS", 60)?),
            max_message_bytes: parsed(&env, "FERRY_RELAY_MAX_MESSAGE_BYTES", 50_000_000)?,
            connector_cert_name: match env("FERRY_RELAY_CONNECTOR_CERT_NAME") {
                Some(name) if name.trim().eq_ignore_ascii_case("off") => None,
                Some(name) if !name.trim().is_empty() => Some(name.trim().to_owned()),
                _ => Some(super::connector::DEFAULT_CERT_NAME.to_owned()),
            },
            client_ca_file: env("FERRY_RELAY_CLIENT_CA_FILE").map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<RelayConfig, ConfigError> {
        RelayConfig::from_env(|key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_then_overrides_then_errors() -> Result<(), ConfigError> {
        let config = load(&[])?;
        assert_eq!(config.listen.to_string(), "127.0.0.1:2525");
        assert_eq!((config.mx_port, config.mta_sts_port), (25, 443));
        assert!(config.resolver.is_none() && config.ca_file.is_none() && config.tls_cert.is_none());
        let config = load(&[
            ("FERRY_RELAY_MX_PORT", "2600"),
            ("FERRY_RELAY_RESOLVER", "127.0.0.1:5353"),
        ])?;
        assert_eq!(config.mx_port, 2600);
        assert_eq!(config.resolver.map(|r| r.port()), Some(5353));
        assert!(load(&[("FERRY_RELAY_MX_PORT", "seventy")]).is_err());
        assert!(
            load(&[("FERRY_RELAY_TLS_CERT", "/a.pem")]).is_err(),
            "a cert without its key"
        );
        assert_eq!(
            load(&[])?.connector_cert_name.as_deref(),
            Some("*.mail.protection.outlook.com")
        );
        assert_eq!(
            load(&[("FERRY_RELAY_CONNECTOR_CERT_NAME", "off")])?.connector_cert_name,
            None
        );
        Ok(())
    }

    #[test]
    fn the_relay_table_of_ferry_toml_is_read_under_the_environment() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            key: "test",
            message: e.to_string(),
        })?;
        let path = dir.path().join("ferry.toml");
        let write = |text: &str| {
            std::fs::write(&path, text).map_err(|e| ConfigError::Invalid {
                key: "test",
                message: e.to_string(),
            })
        };
        write(
            "public_url = \"https://ferry.example.eu\"\n[relay]\nhostname = \"relay.example.eu\"\nhold_seconds = 3600\nlisten = \"0.0.0.0:25\"\n",
        )?;
        let file = path.display().to_string();
        let from = |pairs: &[(&str, &str)]| {
            RelayConfig::from_sources(|key| {
                (key == "FERRY_CONFIG").then(|| file.clone()).or_else(|| {
                    pairs
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| (*v).to_owned())
                })
            })
        };
        let config = from(&[])?;
        assert_eq!(config.hostname, "relay.example.eu");
        assert_eq!(config.hold, Duration::from_secs(3600));
        assert_eq!(config.listen.to_string(), "0.0.0.0:25");
        // The environment wins over the file.
        let config = from(&[("FERRY_RELAY_HOLD_SECONDS", "60")])?;
        assert_eq!(config.hold, Duration::from_secs(60));
        // The service reads the same file without tripping over the table.
        let service = crate::config::Config::from_sources(|key| {
            (key == "FERRY_CONFIG").then(|| file.clone())
        })?;
        assert_eq!(
            service.public_url.as_deref(),
            Some("https://ferry.example.eu")
        );
        write("[relay]\nhold_secs = 5\n")?;
        assert!(from(&[]).is_err(), "an unknown key");
        write("[relay]\nhostname = [1]\n")?;
        assert!(from(&[]).is_err(), "not a string");
        Ok(())
    }
}
