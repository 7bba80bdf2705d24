//! The wire side, sans-IO: build a query, and check a response against the
//! question it answers (RFC 5452 §9.1: ID, name, type and class; the source
//! address is checked by whoever received the datagram), then read its
//! answer: the address records at the end of the CNAME chain (RFC 1034
//! §3.6.2), or a negative answer with its TTL (RFC 2308 §5).

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use std::net::IpAddr;

/// The address family asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// A records (RFC 1035 §3.4.1).
    V4,
    /// AAAA records (RFC 3596 §2.1).
    V6,
}

impl Family {
    pub fn record_type(self) -> RecordType {
        match self {
            Family::V4 => RecordType::A,
            Family::V6 => RecordType::AAAA,
        }
    }
}

/// One question on the wire: an ID, a fully qualified lower-case name, a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub name: Name,
    pub family: Family,
}

impl Question {
    /// The query message, recursion desired (RFC 1035 §4.1.1), class IN.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(self.id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true);
        let mut q = Query::query(self.name.clone(), self.family.record_type());
        q.set_query_class(DNSClass::IN);
        m.add_query(q);
        // A name that parsed as a Name always encodes.
        m.to_vec().unwrap_or_default()
    }
}

/// Why a datagram is not an answer to the question (it is ignored, and the
/// resolver keeps waiting for the real one: RFC 5452 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Malformed(String),
    NotAResponse,
    WrongId { got: u16 },
    WrongQuestion,
    WrongOpcode,
}

/// What a matching response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Addresses of the chain's last name; `ttl` is the smallest of the
    /// chain's and the addresses' TTLs.
    Addresses {
        canonical: Name,
        addrs: Vec<IpAddr>,
        ttl: u32,
    },
    /// The chain ends in a CNAME whose target the server did not resolve:
    /// ask again for `target` (RFC 1034 §5.3.3 step 3c).
    Alias { target: Name, ttl: u32 },
    /// RCODE 3: the name does not exist. `ttl` is the negative TTL, None
    /// when there was no SOA (then it is not cached: RFC 2308 §5).
    NxDomain { ttl: Option<u32> },
    /// The name exists but has no record of that type (RFC 2308 §2.2).
    NoData { ttl: Option<u32> },
    /// TC set: ask again over TCP (RFC 1035 §4.2.1, RFC 7766 §5).
    Truncated,
    /// Another RCODE (SERVFAIL, REFUSED, ...): try the next server.
    ServerError(ResponseCode),
}

/// Longest CNAME chain followed in one response.
const MAX_CHAIN: usize = 16;

/// Checks `bytes` against `q` and reads the reply.
pub fn check_response(q: &Question, bytes: &[u8]) -> Result<Reply, Mismatch> {
    let m = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => {
            // A truncated reply may be cut mid-record; its header still counts.
            if bytes.len() >= 12
                && u16::from_be_bytes([bytes[0], bytes[1]]) == q.id
                && bytes[2] & 0x80 != 0
                && bytes[2] & 0x02 != 0
            {
                return Ok(Reply::Truncated);
            }
            return Err(Mismatch::Malformed(e.to_string()));
        }
    };
    if m.message_type() != MessageType::Response {
        return Err(Mismatch::NotAResponse);
    }
    if m.id() != q.id {
        return Err(Mismatch::WrongId { got: m.id() });
    }
    if m.op_code() != OpCode::Query {
        return Err(Mismatch::WrongOpcode);
    }
    if m.queries().len() != 1 {
        return Err(Mismatch::WrongQuestion);
    }
    let one = &m.queries()[0];
    if !(one.name() == &q.name
        && one.query_type() == q.family.record_type()
        && one.query_class() == DNSClass::IN)
    {
        return Err(Mismatch::WrongQuestion);
    }
    if m.truncated() {
        return Ok(Reply::Truncated);
    }
    let negative_ttl = || {
        // RFC 2308 §5: the SOA's own TTL, capped by its MINIMUM field.
        m.name_servers().iter().find_map(|r| match r.data() {
            RData::SOA(soa) if r.dns_class() == DNSClass::IN => Some(r.ttl().min(soa.minimum())),
            _ => None,
        })
    };
    match m.response_code() {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            return Ok(Reply::NxDomain {
                ttl: negative_ttl(),
            })
        }
        other => return Ok(Reply::ServerError(other)),
    }
    // Follow the chain from the question's name (Name's == ignores case).
    let mut cur = q.name.clone();
    let mut ttl = u32::MAX;
    let mut aliased = false;
    for _ in 0..=MAX_CHAIN {
        let mut addrs = Vec::new();
        for r in m.answers() {
            if r.dns_class() != DNSClass::IN || r.name() != &cur {
                continue;
            }
            match (r.data(), q.family) {
                (RData::A(a), Family::V4) => addrs.push((IpAddr::V4(a.0), r.ttl())),
                (RData::AAAA(a), Family::V6) => addrs.push((IpAddr::V6(a.0), r.ttl())),
                _ => {}
            }
        }
        if !addrs.is_empty() {
            let min = addrs.iter().map(|a| a.1).min().unwrap_or(0);
            return Ok(Reply::Addresses {
                canonical: cur,
                addrs: addrs.into_iter().map(|a| a.0).collect(),
                ttl: ttl.min(min),
            });
        }
        let next = m.answers().iter().find_map(|r| match r.data() {
            RData::CNAME(c) if r.dns_class() == DNSClass::IN && r.name() == &cur => {
                Some((c.0.clone(), r.ttl()))
            }
            _ => None,
        });
        match next {
            Some((target, t)) => {
                ttl = ttl.min(t);
                cur = target;
                aliased = true;
            }
            None => break,
        }
    }
    if aliased && negative_ttl().is_none() {
        return Ok(Reply::Alias { target: cur, ttl });
    }
    Ok(Reply::NoData {
        ttl: negative_ttl(),
    })
}
