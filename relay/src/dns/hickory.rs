//! [`Resolver`](super::Resolver) over hickory-resolver: the system's resolvers, or one DNS
//! server for every lookup (`FERRY_RELAY_RESOLVER`, a test knob).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::{DnsTempFail, Resolver};
use crate::route::{Mx, MxAnswer};

/// How long one query may take before it counts as a timeout (a temporary failure).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a resolver could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up DNS resolution: {0}")]
pub struct ResolverSetupError(String);

/// The production resolver.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// Asks `server` for everything (UDP, TCP on truncation), or the system's resolvers
    /// (`/etc/resolv.conf`) when `None`. Answers are cached for their TTL.
    ///
    /// # Errors
    /// The system configuration cannot be read.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, ResolverSetupError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let config = ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    vec![NameServerConfig::new(addr.ip(), true, vec![udp, tcp])],
                );
                TokioResolver::builder_with_config(config, provider)
            }
            None => {
                TokioResolver::builder(provider).map_err(|e| ResolverSetupError(e.to_string()))?
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 2;
        // Names are absolute: never try them under a search domain.
        options.ndots = 0;
        let inner = builder
            .build()
            .map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self { inner })
    }

    async fn lookup(
        &self,
        name: &str,
        record_type: RecordType,
    ) -> Result<Option<Vec<RData>>, DnsTempFail> {
        let fqdn = absolute(name);
        match self.inner.lookup(fqdn.as_str(), record_type).await {
            Ok(lookup) => Ok(Some(
                lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == record_type)
                    .map(|r| r.data.clone())
                    .collect(),
            )),
            Err(NetError::Dns(DnsError::NoRecordsFound(no)))
                if no.response_code == ResponseCode::NXDomain =>
            {
                Ok(None)
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Ok(Some(Vec::new())),
            Err(e) => Err(DnsTempFail {
                name: name.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// `example.org` → `example.org.` (no search list, one query).
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

impl Resolver for HickoryResolver {
    async fn mx(&self, domain: &str) -> MxAnswer {
        match self.lookup(domain, RecordType::MX).await {
            Err(e) => MxAnswer::TempFail(e.reason),
            Ok(None) => MxAnswer::NxDomain,
            Ok(Some(records)) => {
                let mx: Vec<Mx> = records
                    .into_iter()
                    .filter_map(|data| match data {
                        RData::MX(mx) => Some(Mx {
                            preference: mx.preference,
                            host: mx.exchange.to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect();
                // RFC 7505: a single MX with the root as exchange is a null MX.
                if mx.len() == 1 && (mx[0].host == "." || mx[0].host.is_empty()) {
                    MxAnswer::NullMx
                } else {
                    MxAnswer::Records(mx)
                }
            }
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsTempFail> {
        let records = self
            .lookup(name, RecordType::TXT)
            .await?
            .unwrap_or_default();
        Ok(records
            .into_iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsTempFail> {
        let mut found = Vec::new();
        for record_type in [RecordType::A, RecordType::AAAA] {
            for data in self.lookup(host, record_type).await?.unwrap_or_default() {
                match data {
                    RData::A(a) => found.push(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => found.push(IpAddr::V6(aaaa.0)),
                    _ => {}
                }
            }
        }
        Ok(found)
    }
}
