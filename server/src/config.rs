//! Service configuration, layered: built-in defaults, then an optional `ferry.toml`, then
//! `FERRY_*` environment variables (secrets may also come from `FERRY_*_FILE`). A bad value is
//! an error naming the key; nothing here panics. `Debug` never prints the master key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ratelimit;

mod entra;

pub use entra::{DEFAULT_SCOPE as DEFAULT_ENTRA_SCOPE, ENTRA_JWKS_URL, EntraConfig};

/// Largest upload accepted unless configured otherwise: 5 TiB.
pub const DEFAULT_TUS_MAX_SIZE: u64 = 5 << 40;

/// Everything `ferry` needs to run, resolved from defaults, file and environment.
#[derive(Clone)]
pub struct Config {
    /// Address the HTTP service binds (`FERRY_LISTEN`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the embedded database, the file store and a dev master key live (`FERRY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` (default `sqlite://DATA/ferry.db`) or `postgres://…` (`FERRY_DATABASE_URL`).
    pub database_url: String,
    /// `file://DIR` (default `file://DATA/objects`) (`FERRY_STORE`).
    pub store: String,
    /// Base of the links put into mails (`FERRY_PUBLIC_URL`); defaults to the bound address.
    pub public_url: Option<String>,
    /// Base64 master key (`FERRY_MASTER_KEY` or `FERRY_MASTER_KEY_FILE`); generated in dev.
    pub master_key: Option<String>,
    /// Largest `Upload-Length` accepted (`FERRY_TUS_MAX_SIZE`, bytes).
    pub tus_max_size: u64,
    /// Regions the operator declares to be inside the EEA, beyond the built-in list
    /// (`FERRY_EEA_REGIONS`, comma-separated; for self-hosted stores).
    pub eea_regions: String,
    /// Static S3 credentials from the standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// (and `AWS_SESSION_TOKEN`) variables, read through the same source as the rest so tests
    /// can pass them; `None` leaves the AWS default chain (profile, web identity, instance role).
    pub s3_credentials: Option<S3Credentials>,
    /// Failed link-token lookups one client address (IPv4, or IPv6 /64) may make at once
    /// before recipient routes answer 429 (`FERRY_TOKEN_FAILURE_BURST`).
    pub token_failure_burst: u32,
    /// Failed lookups a client regains per hour once its burst is spent
    /// (`FERRY_TOKEN_FAILURES_PER_HOUR`).
    pub token_failures_per_hour: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`FERRY_TRUSTED_PROXIES`,
    /// comma-separated IP addresses). Empty by default: the TCP peer is the client, since
    /// anyone can send the header.
    pub trusted_proxies: Vec<IpAddr>,
    /// Seconds a client has to send a request's headers, and that an idle kept-alive
    /// connection stays open (`FERRY_HEADER_READ_TIMEOUT`, 1–30, default 30).
    pub header_read_timeout_secs: u32,
    /// Seconds a request or response body may make no progress at all before its connection
    /// is closed (`FERRY_STALL_TIMEOUT`, default 60). Bodies are never limited in total
    /// time: a 5 TiB upload over hours is legitimate, a silent one is not.
    pub stall_timeout_secs: u32,
    /// Open connections this process serves at once (`FERRY_MAX_CONNECTIONS`, default
    /// 4096); beyond them, new connections wait in the listen queue.
    pub max_connections: u32,
    /// Bearer token that lets a scraper read `GET /metrics` from anywhere
    /// (`FERRY_METRICS_TOKEN`). Without it, only clients on this host's loopback that are not
    /// a trusted proxy may read it.
    pub metrics_token: Option<String>,
    /// Sign-in with Entra ID for the Outlook add-in (`FERRY_ENTRA_*`); `None`: off.
    pub entra: Option<EntraConfig>,
}

/// Longest time a client may take to send a request's headers.
pub const MAX_HEADER_READ_TIMEOUT_SECS: u32 = 30;
/// Default for [`Config::stall_timeout_secs`].
pub const DEFAULT_STALL_TIMEOUT_SECS: u32 = 60;
/// Default for [`Config::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

/// An S3 access key pair; `Debug` shows only the key id.
#[derive(Clone)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_password(&self.database_url))
            .field("store", &self.store)
            .field("public_url", &self.public_url)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field("tus_max_size", &self.tus_max_size)
            .field("eea_regions", &self.eea_regions)
            .field("s3_credentials", &self.s3_credentials)
            .field("token_failure_burst", &self.token_failure_burst)
            .field("token_failures_per_hour", &self.token_failures_per_hour)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("stall_timeout_secs", &self.stall_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[redacted]"),
            )
            .field("entra", &self.entra)
            .finish()
    }
}

/// Why the configuration could not be loaded; always names the offending key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key had a value that does not parse.
    #[error("configuration key {key}: {message}")]
    Invalid {
        /// The `FERRY_*` variable or `ferry.toml` key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration file exists but cannot be read or parsed.
    #[error("configuration file {path}: {message}")]
    File {
        /// Path of the file.
        path: PathBuf,
        /// Reader or parser message.
        message: String,
    },
}

/// The shape of `ferry.toml`: the same keys as the environment, lower case, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    store: Option<String>,
    public_url: Option<String>,
    master_key_file: Option<PathBuf>,
    tus_max_size: Option<u64>,
    eea_regions: Option<String>,
    token_failure_burst: Option<u32>,
    token_failures_per_hour: Option<u32>,
    trusted_proxies: Option<String>,
    header_read_timeout: Option<u32>,
    stall_timeout: Option<u32>,
    max_connections: Option<u32>,
    metrics_token: Option<String>,
    entra_client_id: Option<String>,
    entra_app_id_uri: Option<String>,
    entra_scope: Option<String>,
    entra_jwks_url: Option<String>,
    /// `ferry relay serve`'s settings, read by [`crate::relay::config`] (only let through here).
    #[serde(rename = "relay")]
    _relay: Option<toml::Table>,
}

impl Config {
    /// Loads defaults, then `ferry.toml` (path in `FERRY_CONFIG`, else `./ferry.toml` if it
    /// exists), then the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(|key| std::env::var(key).ok())
    }

    /// Same as [`Config::load`] with an explicit environment, so tests need not mutate the
    /// process's.
    pub fn from_sources(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match config_file(&env) {
            Some(path) => read_file_config(&path)?,
            None => FileConfig::default(),
        };

        let listen_text = env("FERRY_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text.parse().map_err(|e| ConfigError::Invalid {
            key: "FERRY_LISTEN",
            message: format!("{listen_text:?} is not host:port ({e})"),
        })?;
        let data_dir = env("FERRY_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = env("FERRY_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("ferry.db").display()));
        let store = env("FERRY_STORE")
            .or(file.store)
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        let public_url = env("FERRY_PUBLIC_URL").or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "FERRY_PUBLIC_URL",
                message: format!("{url:?} must start with http:// or https://"),
            });
        }
        let master_key = match env("FERRY_MASTER_KEY") {
            Some(key) => Some(key),
            None => match env("FERRY_MASTER_KEY_FILE")
                .map(PathBuf::from)
                .or(file.master_key_file)
            {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| ConfigError::File {
                            path: path.clone(),
                            message: e.to_string(),
                        })?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            },
        };
        let tus_max_size = match env("FERRY_TUS_MAX_SIZE") {
            Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
                key: "FERRY_TUS_MAX_SIZE",
                message: format!("{text:?} is not a byte count"),
            })?,
            None => file.tus_max_size.unwrap_or(DEFAULT_TUS_MAX_SIZE),
        };
        let eea_regions = env("FERRY_EEA_REGIONS")
            .or(file.eea_regions)
            .unwrap_or_default();
        let token_failure_burst = positive(
            "FERRY_TOKEN_FAILURE_BURST",
            env("FERRY_TOKEN_FAILURE_BURST"),
            file.token_failure_burst,
            ratelimit::DEFAULT_BURST,
        )?;
        let token_failures_per_hour = positive(
            "FERRY_TOKEN_FAILURES_PER_HOUR",
            env("FERRY_TOKEN_FAILURES_PER_HOUR"),
            file.token_failures_per_hour,
            ratelimit::DEFAULT_PER_HOUR,
        )?;
        let trusted_proxies = env("FERRY_TRUSTED_PROXIES")
            .or(file.trusted_proxies)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse::<IpAddr>()
                    .map(|ip| ip.to_canonical())
                    .map_err(|_| ConfigError::Invalid {
                        key: "FERRY_TRUSTED_PROXIES",
                        message: format!("{text:?} is not an IP address"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let header_read_timeout_secs = positive(
            "FERRY_HEADER_READ_TIMEOUT",
            env("FERRY_HEADER_READ_TIMEOUT"),
            file.header_read_timeout,
            MAX_HEADER_READ_TIMEOUT_SECS,
        )?;
        if header_read_timeout_secs > MAX_HEADER_READ_TIMEOUT_SECS {
            return Err(ConfigError::Invalid {
                key: "FERRY_HEADER_READ_TIMEOUT",
                message: format!("must be at most {MAX_HEADER_READ_TIMEOUT_SECS} seconds"),
            });
        }
        let stall_timeout_secs = positive(
            "FERRY_STALL_TIMEOUT",
            env("FERRY_STALL_TIMEOUT"),
            file.stall_timeout,
            DEFAULT_STALL_TIMEOUT_SECS,
        )?;
        let max_connections = positive(
            "FERRY_MAX_CONNECTIONS",
            env("FERRY_MAX_CONNECTIONS"),
            file.max_connections,
            DEFAULT_MAX_CONNECTIONS,
        )?;
        let metrics_token = env("FERRY_METRICS_TOKEN")
            .or(file.metrics_token)
            .filter(|token| !token.trim().is_empty());
        let entra = entra::resolve(
            &env,
            entra::FileEntra {
                entra_client_id: file.entra_client_id,
                entra_app_id_uri: file.entra_app_id_uri,
                entra_scope: file.entra_scope,
                entra_jwks_url: file.entra_jwks_url,
            },
        )?;
        let s3_credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
                access_key_id,
                secret_access_key,
                session_token: env("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        Ok(Config {
            entra,
            metrics_token,
            eea_regions,
            s3_credentials,
            listen,
            data_dir,
            database_url,
            store,
            public_url,
            master_key,
            tus_max_size,
            token_failure_burst,
            token_failures_per_hour,
            trusted_proxies,
            header_read_timeout_secs,
            stall_timeout_secs,
            max_connections,
        })
    }
}

/// A count that must be at least 1: from the environment's text, else the file, else `default`.
fn positive(
    key: &'static str,
    env: Option<String>,
    file: Option<u32>,
    default: u32,
) -> Result<u32, ConfigError> {
    let value = match env {
        Some(text) => text.trim().parse().map_err(|_| ConfigError::Invalid {
            key,
            message: format!("{text:?} is not a whole number"),
        })?,
        None => file.unwrap_or(default),
    };
    if value == 0 {
        return Err(ConfigError::Invalid {
            key,
            message: "must be at least 1".to_owned(),
        });
    }
    Ok(value)
}

/// `scheme://user:secret@host` → `scheme://user:[redacted]@host`, so URLs can be logged.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

/// The configuration file in use: `FERRY_CONFIG`, else `./ferry.toml` if it exists.
fn config_file(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match env("FERRY_CONFIG") {
        Some(path) => Some(PathBuf::from(path)),
        None if Path::new("ferry.toml").exists() => Some(PathBuf::from("ferry.toml")),
        None => None,
    }
}

/// The `[name]` table of the configuration file in use, if there is one with it: settings of
/// a part that reads its own (the relay's `[relay]`).
///
/// # Errors
/// The file cannot be read or is not TOML.
pub fn file_table(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<toml::Table>, ConfigError> {
    let Some(path) = config_file(env) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut whole: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.clone(),
        message: e.to_string(),
    })?;
    match whole.remove(name) {
        None => Ok(None),
        Some(toml::Value::Table(table)) => Ok(Some(table)),
        Some(_) => Err(ConfigError::File {
            path,
            message: format!("[{name}] must be a table"),
        }),
    }
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_sources(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_work_on_a_laptop() -> Result<(), ConfigError> {
        let config = load(&[])?;
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://./data/ferry.db");
        assert_eq!(config.store, "file://./data/objects");
        assert_eq!(config.tus_max_size, 5 << 40);
        assert_eq!(config.token_failure_burst, 1000);
        assert_eq!(config.token_failures_per_hour, 1000);
        assert!(config.trusted_proxies.is_empty());
        Ok(())
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load(&[("FERRY_LISTEN", "nowhere")])
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("FERRY_LISTEN"));
        let err = load(&[("FERRY_TUS_MAX_SIZE", "-1")])
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("FERRY_TUS_MAX_SIZE"));
    }

    #[test]
    fn token_budget_and_trusted_proxies_parse_and_name_bad_values() -> Result<(), ConfigError> {
        let config = load(&[
            ("FERRY_TOKEN_FAILURE_BURST", "50"),
            ("FERRY_TOKEN_FAILURES_PER_HOUR", "10"),
            (
                "FERRY_TRUSTED_PROXIES",
                "10.0.0.1, ::ffff:10.0.0.2,2001:db8::1",
            ),
        ])?;
        assert_eq!(config.token_failure_burst, 50);
        assert_eq!(config.token_failures_per_hour, 10);
        let expected: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "2001:db8::1"]
            .iter()
            .filter_map(|text| text.parse().ok())
            .collect();
        assert_eq!(config.trusted_proxies, expected);
        for (key, value) in [
            ("FERRY_TOKEN_FAILURE_BURST", "0"),
            ("FERRY_TOKEN_FAILURES_PER_HOUR", "many"),
            ("FERRY_TRUSTED_PROXIES", "10.0.0.0/8"),
        ] {
            let err = load(&[(key, value)]).err().map(|e| e.to_string());
            assert!(err.unwrap_or_default().contains(key), "{key}={value}");
        }
        Ok(())
    }

    #[test]
    fn debug_redacts_database_passwords() -> Result<(), ConfigError> {
        let config = load(&[(
            "FERRY_DATABASE_URL",
            "postgres://ferry:hunter2@db:5432/ferry",
        )])?;
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://ferry:[redacted]@db:5432/ferry"),
            "{shown}"
        );
        Ok(())
    }

    #[test]
    fn entra_sign_in_is_off_until_a_client_id_is_set_and_checks_its_values()
    -> Result<(), ConfigError> {
        assert_eq!(load(&[])?.entra, None);
        let config = load(&[(
            "FERRY_ENTRA_CLIENT_ID",
            "6E74172B-BE56-4843-9FF4-E66A39BB12E3",
        )])?;
        let entra = config.entra.ok_or(ConfigError::Invalid {
            key: "FERRY_ENTRA_CLIENT_ID",
            message: "ignored".into(),
        })?;
        assert_eq!(entra.client_id, "6e74172b-be56-4843-9ff4-e66a39bb12e3");
        assert_eq!(entra.scope, DEFAULT_ENTRA_SCOPE);
        assert_eq!(entra.jwks_url, ENTRA_JWKS_URL);
        let client = (
            "FERRY_ENTRA_CLIENT_ID",
            "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        );
        for (key, value) in [
            ("FERRY_ENTRA_CLIENT_ID", "ferry-app"),
            ("FERRY_ENTRA_SCOPE", "a b"),
            ("FERRY_ENTRA_JWKS_URL", "http://login.example/keys"),
        ] {
            let err = load(&[client, (key, value)]).err().map(|e| e.to_string());
            assert!(err.unwrap_or_default().contains(key), "{key}={value}");
        }
        let local = load(&[client, ("FERRY_ENTRA_JWKS_URL", "http://127.0.0.1:9/keys")])?;
        assert!(
            local
                .entra
                .is_some_and(|e| e.jwks_url == "http://127.0.0.1:9/keys")
        );
        Ok(())
    }

    #[test]
    fn debug_redacts_the_master_key() -> Result<(), ConfigError> {
        let config = load(&[("FERRY_MASTER_KEY", "c2VjcmV0c2VjcmV0")])?;
        let shown = format!("{config:?}");
        assert!(!shown.contains("c2VjcmV0c2VjcmV0"));
        assert!(shown.contains("redacted"));
        Ok(())
    }
}
