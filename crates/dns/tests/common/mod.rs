//! The in-memory DNS server the memnet tests (sync and tokio) resolve
//! against: hickory-proto messages on ustack's UDP and TCP sockets, with
//! loss on the link where asked.
#![allow(dead_code)]

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use ustack::memnet::MemNet;
use ustack::net::{TcpListener, UdpSocket};
use ustack::{Mode, Runtime};
use ustack_devices::Impairments;
use ustack_dns::{Config, Resolver};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const SERVER2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// What the test server knows and how it misbehaves.
#[derive(Default, Clone)]
pub struct Zone {
    pub a: HashMap<Name, Vec<Ipv4Addr>>,
    pub cname: HashMap<Name, Name>,
    /// Answer a CNAME without its target's records (the client must ask again).
    pub cname_only: bool,
    /// Before each real answer, send one from another port (a spoof with the
    /// right ID) and one with a wrong ID.
    pub spoof: bool,
    /// Answer SERVFAIL to everything.
    pub servfail: bool,
    pub ttl: u32,
}

pub struct DnsServer {
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn soa() -> Record {
    Record::from_rdata(
        name("test."),
        300,
        RData::SOA(SOA::new(
            name("ns.test."),
            name("admin.test."),
            1,
            3600,
            600,
            86400,
            30,
        )),
    )
}

/// The response to `q`; over UDP one above 512 bytes is cut to its header
/// and question with TC set (RFC 1035 §4.2.1).
pub fn respond(zone: &Zone, q: &Message, udp: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true);
    let Some(query) = q.query().cloned() else {
        m.set_response_code(ResponseCode::FormErr);
        return m.to_vec().unwrap();
    };
    m.add_query(query.clone());
    if zone.servfail {
        m.set_response_code(ResponseCode::ServFail);
        return m.to_vec().unwrap();
    }
    let mut cur = query.name().clone();
    let mut found = false;
    for _ in 0..10 {
        if let Some(t) = zone.cname.get(&cur) {
            m.add_answer(Record::from_rdata(
                cur.clone(),
                zone.ttl,
                RData::CNAME(CNAME(t.clone())),
            ));
            found = true;
            cur = t.clone();
            if zone.cname_only {
                break;
            }
            continue;
        }
        if let Some(v) = zone.a.get(&cur) {
            found = true;
            if query.query_type() == RecordType::A {
                for ip in v {
                    m.add_answer(Record::from_rdata(cur.clone(), zone.ttl, RData::A(A(*ip))));
                }
            } else {
                m.add_name_server(soa());
            }
        }
        break;
    }
    if !found {
        m.set_response_code(ResponseCode::NXDomain);
        m.add_name_server(soa());
    }
    let bytes = m.to_vec().unwrap();
    if udp && bytes.len() > 512 {
        let mut t = Message::new();
        t.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_recursion_desired(true)
            .set_truncated(true)
            .add_query(query);
        return t.to_vec().unwrap();
    }
    bytes
}

pub fn start_server(rt: &Runtime, zone: Zone) -> DnsServer {
    let stop = Arc::new(AtomicBool::new(false));
    let udp_queries = Arc::new(AtomicUsize::new(0));
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    let sock = UdpSocket::bind(rt, "0.0.0.0:53").unwrap();
    let spoof_sock = UdpSocket::bind(rt, "0.0.0.0:5353").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    {
        let (stop, n, zone) = (stop.clone(), udp_queries.clone(), zone.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                n.fetch_add(1, Ordering::Relaxed);
                let reply = respond(&zone, &q, true);
                if zone.spoof {
                    // Right ID, wrong source port, wrong address.
                    let mut fake = Message::from_vec(&reply).unwrap();
                    let answers: Vec<Record> = fake
                        .answers()
                        .iter()
                        .map(|r| {
                            Record::from_rdata(r.name().clone(), 999, RData::A(A::new(6, 6, 6, 6)))
                        })
                        .collect();
                    fake.take_answers();
                    fake.insert_answers(answers);
                    let _ = spoof_sock.send_to(&fake.to_vec().unwrap(), from);
                    // Right source, wrong ID.
                    fake.set_id(q.id().wrapping_add(1));
                    let _ = sock.send_to(&fake.to_vec().unwrap(), from);
                }
                let _ = sock.send_to(&reply, from);
            }
        }));
    }
    let listener = TcpListener::bind(rt, "0.0.0.0:53").unwrap();
    listener.set_nonblocking(true).unwrap();
    {
        let (stop, n) = (stop.clone(), tcp_queries.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut l = [0u8; 2];
                if s.read_exact(&mut l).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(l))];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                let Ok(q) = Message::from_vec(&q) else {
                    continue;
                };
                n.fetch_add(1, Ordering::Relaxed);
                let reply = respond(&zone, &q, false);
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                let _ = s.write_all(&framed);
                // Let the reply drain before the socket closes.
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    DnsServer {
        udp_queries,
        tcp_queries,
        stop,
        threads,
    }
}

pub fn zone() -> Zone {
    let mut z = Zone {
        ttl: 60,
        ..Zone::default()
    };
    z.a.insert(name("www.test."), vec![Ipv4Addr::new(192, 0, 2, 10)]);
    z.cname.insert(name("alias.test."), name("middle.test."));
    z.cname.insert(name("middle.test."), name("www.test."));
    z.a.insert(
        name("many.test."),
        (1..=60).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect(),
    );
    z
}

pub fn net(loss: f64, seed: u64) -> (MemNet, Runtime, Runtime) {
    let net = MemNet::new(
        seed,
        Impairments::none()
            .with_loss(loss)
            .with_delay(Duration::from_millis(2)),
    );
    let c = net.host(CLIENT, Mode::Thread).unwrap();
    let s = net.host(SERVER, Mode::Thread).unwrap();
    (net, c, s)
}

pub fn server_addr(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, 53))
}

pub fn resolver() -> Resolver {
    Resolver::new(
        Config::new(vec![server_addr(SERVER)])
            .with_timeout(Duration::from_millis(300))
            .with_attempts(8),
    )
}
