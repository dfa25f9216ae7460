//! A small authoritative DNS server on 127.0.0.1 (UDP) for the relay's tests: the test sets
//! what each name answers — records, NXDOMAIN, SERVFAIL, or silence (a timeout) — and points
//! the relay at it (`FERRY_RELAY_RESOLVER`). TTLs are 0, so a changed answer is seen at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
pub use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_proto::rr::{Name, RData, Record};
use tokio::net::UdpSocket;

/// What one name answers for one type.
#[derive(Debug, Clone)]
pub enum Answer {
    /// These records.
    Records(Vec<RData>),
    /// SERVFAIL.
    ServFail,
    /// No reply at all: the client times out.
    Silence,
}

type Zone = HashMap<(String, RecordType), Answer>;

/// The server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn name(host: &str) -> anyhow::Result<Name> {
    let absolute = format!("{}.", host.trim_end_matches('.'));
    Ok(Name::from_ascii(absolute)?)
}

impl DnsServer {
    /// Binds 127.0.0.1 on a free port and answers from an empty zone (NXDOMAIN everywhere).
    ///
    /// # Errors
    /// The socket cannot be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let serving = Arc::clone(&zone);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Some(reply) = answer(&serving, &buf[..n]) else {
                    continue;
                };
                let _ = socket.send_to(&reply, from).await;
            }
        });
        Ok(Self { addr, zone, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the answer of `name` for `record_type`.
    pub fn set(&self, name: &str, record_type: RecordType, answer: Answer) {
        self.zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key(name), record_type), answer);
    }

    /// Removes every answer of `name` (it no longer exists).
    pub fn remove(&self, name: &str) {
        let name = key(name);
        self.zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(n, _), _| *n != name);
    }

    /// `domain MX preference host` for each pair.
    ///
    /// # Errors
    /// A host is no valid DNS name.
    pub fn mx(&self, domain: &str, hosts: &[(u16, &str)]) -> anyhow::Result<()> {
        let mut records = Vec::new();
        for (preference, host) in hosts {
            records.push(RData::MX(MX::new(*preference, name(host)?)));
        }
        self.set(domain, RecordType::MX, Answer::Records(records));
        Ok(())
    }

    /// `host A/AAAA ip`.
    pub fn address(&self, host: &str, ip: IpAddr) {
        let (record_type, data) = match ip {
            IpAddr::V4(v4) => (RecordType::A, RData::A(A(v4))),
            IpAddr::V6(v6) => (RecordType::AAAA, RData::AAAA(AAAA(v6))),
        };
        self.set(host, record_type, Answer::Records(vec![data]));
    }

    /// `name TXT text` (one record per entry).
    pub fn txt(&self, name: &str, texts: &[&str]) {
        let records = texts
            .iter()
            .map(|t| RData::TXT(TXT::new(vec![(*t).to_owned()])))
            .collect();
        self.set(name, RecordType::TXT, Answer::Records(records));
    }
}

/// The reply to one query, or `None` to stay silent (or for garbage).
fn answer(zone: &Mutex<Zone>, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let question = request.queries.first()?.clone();
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    let qname = key(&question.name().to_ascii());
    let zone = zone.lock().unwrap_or_else(PoisonError::into_inner);
    match zone.get(&(qname.clone(), question.query_type())) {
        Some(Answer::Silence) => return None,
        Some(Answer::ServFail) => reply.metadata.response_code = ResponseCode::ServFail,
        Some(Answer::Records(records)) => {
            for data in records {
                reply.add_answer(Record::from_rdata(question.name().clone(), 0, data.clone()));
            }
        }
        None if zone.keys().any(|(n, _)| *n == qname) => {} // NODATA
        None => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply.to_vec().ok()
}
