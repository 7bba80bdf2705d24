//! The resolver's logic, sans-IO: the hosts map, the cache, which server to
//! ask next over which transport, and what a reply means. A driver (the
//! sync one in [`crate::sync`], or an async one) only moves the bytes of
//! each [`Attempt`] and reports back what came, or that its time ran out.

use crate::cache::{Cache, Cached};
use crate::hosts::Hosts;
use crate::message::{check_response, Family, Question, Reply};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use ustack_core::{Duration, Instant};

/// The resolver's settings, with resolv.conf(5)-like defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Asked in order; each try moves to the next one (port 53 usually).
    pub servers: Vec<SocketAddr>,
    /// How long one try waits for its answer.
    pub timeout: Duration,
    /// Rounds over the server list before giving up.
    pub attempts: u32,
    /// Consulted first; a name it knows never goes to a server.
    pub hosts: Hosts,
    /// Entries the cache keeps (0: no cache).
    pub cache_size: usize,
    /// CNAME hops followed across queries (RFC 1034 §5.3.3 bounds the chase).
    pub max_aliases: usize,
}

impl Config {
    pub fn new(servers: Vec<SocketAddr>) -> Config {
        Config {
            servers,
            timeout: Duration::from_secs(2),
            attempts: 2,
            hosts: Hosts::new(),
            cache_size: 1024,
            max_aliases: 8,
        }
    }

    pub fn with_timeout(mut self, t: Duration) -> Config {
        self.timeout = t;
        self
    }

    pub fn with_attempts(mut self, n: u32) -> Config {
        self.attempts = n.max(1);
        self
    }

    pub fn with_hosts(mut self, h: Hosts) -> Config {
        self.hosts = h;
        self
    }

    pub fn with_cache_size(mut self, n: usize) -> Config {
        self.cache_size = n;
        self
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The name was an address literal.
    Literal,
    Hosts,
    Cache,
    Server(SocketAddr),
}

/// A name's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The name as asked.
    pub name: String,
    /// The end of the CNAME chain, without the final dot.
    pub canonical: String,
    pub addrs: Vec<IpAddr>,
    /// Seconds it may be kept (0 for hosts and literals).
    pub ttl: u32,
    pub source: Source,
}

/// Why a lookup failed, in words that say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    InvalidName {
        name: String,
        why: String,
    },
    /// RCODE 3 (possibly from the cache).
    NxDomain {
        name: String,
    },
    /// The name exists but has no address of that family.
    NoData {
        name: String,
    },
    /// No server answered in time.
    Timeout {
        name: String,
        tries: u32,
    },
    /// Servers answered with an error RCODE (SERVFAIL, REFUSED...).
    ServerError {
        name: String,
        rcode: ResponseCode,
    },
    /// A CNAME chain longer than the limit (or a loop).
    TooManyAliases {
        name: String,
    },
    NoServers,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, why } => write!(f, "'{name}' is not a valid host name: {why}"),
            Error::NxDomain { name } => write!(f, "{name}: no such host (NXDOMAIN)"),
            Error::NoData { name } => write!(f, "{name}: the name has no address of that family"),
            Error::Timeout { name, tries } => write!(
                f,
                "{name}: no DNS server answered ({tries} tries); check --dns and that the server is reachable"
            ),
            Error::ServerError { name, rcode } => {
                write!(f, "{name}: the DNS server failed to answer ({rcode})")
            }
            Error::TooManyAliases { name } => write!(f, "{name}: CNAME chain too long or looping"),
            Error::NoServers => write!(f, "no DNS server configured; give one (e.g. --dns 10.200.0.1)"),
        }
    }
}

impl std::error::Error for Error {}

/// How an attempt travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// After a truncated UDP reply (RFC 7766 §5), with the 2-byte length
    /// prefix of RFC 1035 §4.2.2.
    Tcp,
}

/// One query for the driver to send and wait on.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub server: SocketAddr,
    pub transport: Transport,
    /// The query message (without TCP's length prefix).
    pub message: Vec<u8>,
    pub timeout: Duration,
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step {
    Send(Attempt),
    Done(Result<Answer, Error>),
}

/// A random 16-bit number from the OS (RFC 5452 §4.3: unpredictable IDs).
pub fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: mix the clock, which is still better than a counter.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return (t ^ (t >> 16)) as u16;
    }
    u16::from_be_bytes(b)
}

/// A resolver: settings plus the cache, shared by every lookup (Sync).
#[derive(Debug)]
pub struct Resolver {
    cfg: Config,
    cache: Mutex<Cache>,
}

/// One lookup in progress.
#[derive(Debug)]
pub struct Resolution {
    family: Family,
    asked: String,
    /// The name being queried now (the query name, or an alias target).
    current: Name,
    question: Question,
    transport: Transport,
    server: usize,
    tries: u32,
    aliases: usize,
    /// Smallest TTL of the CNAMEs followed so far.
    alias_ttl: u32,
    last_error: Option<Error>,
}

fn display(n: &Name) -> String {
    let s = n.to_ascii();
    s.trim_end_matches('.').to_string()
}

/// Parses and checks a host name (RFC 1123 §2.1 lengths), as fully qualified.
pub fn parse_name(name: &str) -> Result<Name, Error> {
    let bad = |why: &str| Error::InvalidName {
        name: name.to_string(),
        why: why.to_string(),
    };
    if name.is_empty() || name == "." {
        return Err(bad("it is empty"));
    }
    if name.len() > 254 {
        return Err(bad("longer than 253 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(bad("only letters, digits, '-', '_' and '.' may appear"));
    }
    if name.trim_end_matches('.').split('.').any(|l| l.is_empty()) {
        return Err(bad(
            "it has an empty label (two dots in a row, or a leading dot)",
        ));
    }
    let mut n = Name::from_ascii(name).map_err(|e| bad(&e.to_string()))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

impl Resolver {
    pub fn new(cfg: Config) -> Resolver {
        let cache = Cache::new(cfg.cache_size);
        Resolver {
            cfg,
            cache: Mutex::new(cache),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Empties the cache.
    pub fn flush(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a lookup: literals, the hosts map and the cache answer at once;
    /// otherwise the first attempt.
    pub fn start(&self, name: &str, family: Family, now: Instant) -> (Resolution, Step) {
        let lit = name.parse::<IpAddr>().ok();
        let qname = if lit.is_some() {
            Ok(Name::root())
        } else {
            parse_name(name)
        };
        let mut res = Resolution {
            family,
            asked: name.to_string(),
            current: qname.clone().unwrap_or_else(|_| Name::root()),
            question: Question {
                id: 0,
                name: Name::root(),
                family,
            },
            transport: Transport::Udp,
            server: 0,
            tries: 0,
            aliases: 0,
            alias_ttl: u32::MAX,
            last_error: None,
        };
        let done = Step::Done;
        if let Some(ip) = lit {
            let fits = match family {
                Family::V4 => ip.is_ipv4(),
                Family::V6 => ip.is_ipv6(),
            };
            let r = if fits {
                Ok(res.answer(name.to_string(), vec![ip], 0, Source::Literal))
            } else {
                Err(Error::NoData {
                    name: name.to_string(),
                })
            };
            return (res, done(r));
        }
        if let Err(e) = qname {
            return (res, done(Err(e)));
        }
        if self.cfg.hosts.knows(name) {
            let r = match self.cfg.hosts.lookup(name, family) {
                Some(addrs) => Ok(res.answer(
                    name.trim_end_matches('.').to_ascii_lowercase(),
                    addrs,
                    0,
                    Source::Hosts,
                )),
                None => Err(Error::NoData {
                    name: name.to_string(),
                }),
            };
            return (res, done(r));
        }
        let step = self.ask(&mut res, now);
        (res, step)
    }

    /// The cache's answer for the current name, or an attempt at a server.
    fn ask(&self, res: &mut Resolution, now: Instant) -> Step {
        let key = res.current.to_ascii();
        if let Some((c, left)) = self.cache().get(&key, res.family, now) {
            let r = match c {
                Cached::Addresses { canonical, addrs } => {
                    Ok(res.answer(canonical, addrs, left.min(res.alias_ttl), Source::Cache))
                }
                Cached::NxDomain => Err(Error::NxDomain {
                    name: res.asked.clone(),
                }),
                Cached::NoData => Err(Error::NoData {
                    name: res.asked.clone(),
                }),
            };
            return Step::Done(r);
        }
        if self.cfg.servers.is_empty() {
            return Step::Done(Err(Error::NoServers));
        }
        res.transport = Transport::Udp;
        self.attempt(res)
    }

    fn attempt(&self, res: &mut Resolution) -> Step {
        res.question = Question {
            id: random_u16(),
            name: res.current.clone(),
            family: res.family,
        };
        Step::Send(Attempt {
            server: self.cfg.servers[res.server % self.cfg.servers.len()],
            transport: res.transport,
            message: res.question.encode(),
            timeout: self.cfg.timeout,
        })
    }

    /// Moves to the next server (and round), or ends with the last error.
    fn next_server(&self, res: &mut Resolution, err: Error) -> Step {
        res.last_error = Some(match (&res.last_error, err) {
            // A server's own error says more than another's silence.
            (Some(e @ Error::ServerError { .. }), Error::Timeout { .. }) => e.clone(),
            (_, e) => e,
        });
        res.tries += 1;
        res.server += 1;
        res.transport = Transport::Udp;
        let total = self.cfg.attempts.max(1) * self.cfg.servers.len() as u32;
        if res.tries >= total {
            let e = res.last_error.take().unwrap_or(Error::NoServers);
            return Step::Done(Err(e));
        }
        self.attempt(res)
    }

    fn server(&self, res: &Resolution) -> SocketAddr {
        self.cfg.servers[res.server % self.cfg.servers.len()]
    }
}

impl Resolution {
    fn answer(&self, canonical: String, addrs: Vec<IpAddr>, ttl: u32, source: Source) -> Answer {
        Answer {
            name: self.asked.clone(),
            canonical,
            addrs,
            ttl,
            source,
        }
    }

    /// The question now in flight.
    pub fn question(&self) -> &Question {
        &self.question
    }

    /// A datagram (or a TCP reply) from `from`. None: it does not answer
    /// the question in flight (another source, ID or question; RFC 5452
    /// §9.1), so keep waiting for the one that does.
    pub fn on_reply(
        &mut self,
        r: &Resolver,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> Option<Step> {
        if from != r.server(self) {
            return None;
        }
        let reply = match check_response(&self.question, bytes) {
            Ok(reply) => reply,
            Err(_) if self.transport == Transport::Tcp => {
                // On TCP nobody else can inject: a bad reply is this server's fault.
                let e = Error::ServerError {
                    name: self.asked.clone(),
                    rcode: ResponseCode::FormErr,
                };
                return Some(r.next_server(self, e));
            }
            Err(_) => return None,
        };
        let name = self.current.to_ascii();
        Some(match reply {
            Reply::Addresses {
                canonical,
                addrs,
                ttl,
            } => {
                let canonical = display(&canonical);
                r.cache().put(
                    &name,
                    self.family,
                    Cached::Addresses {
                        canonical: canonical.clone(),
                        addrs: addrs.clone(),
                    },
                    ttl,
                    now,
                );
                let ttl = ttl.min(self.alias_ttl);
                if self.aliases > 0 {
                    // Also under the name first asked, for the chain's TTL.
                    r.cache().put(
                        &self.asked_key(),
                        self.family,
                        Cached::Addresses {
                            canonical: canonical.clone(),
                            addrs: addrs.clone(),
                        },
                        ttl,
                        now,
                    );
                }
                Step::Done(Ok(self.answer(canonical, addrs, ttl, Source::Server(from))))
            }
            Reply::Alias { target, ttl } => {
                self.aliases += 1;
                self.alias_ttl = self.alias_ttl.min(ttl);
                if self.aliases > r.cfg.max_aliases || target == self.current {
                    return Some(Step::Done(Err(Error::TooManyAliases {
                        name: self.asked.clone(),
                    })));
                }
                self.current = target;
                r.ask(self, now)
            }
            Reply::NxDomain { ttl } | Reply::NoData { ttl } => {
                let nx = matches!(reply, Reply::NxDomain { .. });
                if let Some(ttl) = ttl {
                    let v = if nx { Cached::NxDomain } else { Cached::NoData };
                    r.cache().put(&name, self.family, v.clone(), ttl, now);
                    if self.aliases > 0 {
                        r.cache().put(
                            &self.asked_key(),
                            self.family,
                            v,
                            ttl.min(self.alias_ttl),
                            now,
                        );
                    }
                }
                let name = self.asked.clone();
                Step::Done(Err(if nx {
                    Error::NxDomain { name }
                } else {
                    Error::NoData { name }
                }))
            }
            Reply::Truncated if self.transport == Transport::Udp => {
                self.transport = Transport::Tcp;
                r.attempt(self)
            }
            Reply::Truncated => r.next_server(
                self,
                Error::ServerError {
                    name: self.asked.clone(),
                    rcode: ResponseCode::FormErr,
                },
            ),
            Reply::ServerError(rcode) => r.next_server(
                self,
                Error::ServerError {
                    name: self.asked.clone(),
                    rcode,
                },
            ),
        })
    }

    fn asked_key(&self) -> String {
        parse_name(&self.asked)
            .map(|n| n.to_ascii())
            .unwrap_or_default()
    }

    /// The attempt's time ran out.
    pub fn on_timeout(&mut self, r: &Resolver, _now: Instant) -> Step {
        let e = Error::Timeout {
            name: self.asked.clone(),
            tries: self.tries + 1,
        };
        r.next_server(self, e)
    }

    /// The attempt failed locally or was refused (ICMP unreachable, RST):
    /// counts as that server's silence.
    pub fn on_error(&mut self, r: &Resolver, now: Instant) -> Step {
        self.on_timeout(r, now)
    }
}
