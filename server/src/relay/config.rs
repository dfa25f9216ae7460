//! `ferry relay serve`'s settings, from the environment (`FERRY_RELAY_*`). The ones marked
//! "test knob" exist so the suite can run the relay against its own DNS, MX and CA; in
//! production they stay unset.

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
}

impl RelayConfig {
    /// Reads the settings with `env`.
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
        Ok(())
    }
}
