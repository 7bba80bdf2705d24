//! The resolver's logic without I/O, on a clock the test sets: replies that
//! do not match the question are ignored (RFC 5452 §9.1), TTLs run out
//! (RFC 1035 §3.2.1), negative answers last min(SOA TTL, MINIMUM) (RFC 2308 §5).

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use ustack_core::{Duration, Instant};
use ustack_dns::message::{check_response, Mismatch, Reply};
use ustack_dns::{Config, Error, Family, Question, Resolver, Source, Step, Transport};

fn server() -> SocketAddr {
    "192.0.2.53:53".parse().unwrap()
}

fn question_of(step: &Step) -> Message {
    match step {
        Step::Send(a) => Message::from_vec(&a.message).unwrap(),
        Step::Done(r) => panic!("expected a query, got {r:?}"),
    }
}

/// A reply to `q` with `answers` (name, ttl, address) and an optional SOA (ttl, minimum).
fn reply(
    q: &Message,
    rcode: ResponseCode,
    answers: &[(&str, u32, Ipv4Addr)],
    soa: Option<(u32, u32)>,
) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_response_code(rcode)
        .add_query(q.queries()[0].clone());
    for (n, ttl, ip) in answers {
        m.add_answer(Record::from_rdata(
            Name::from_ascii(n).unwrap(),
            *ttl,
            RData::A(A(*ip)),
        ));
    }
    if let Some((ttl, min)) = soa {
        let n = |s: &str| Name::from_ascii(s).unwrap();
        m.add_name_server(Record::from_rdata(
            n("test."),
            ttl,
            RData::SOA(SOA::new(n("ns.test."), n("h.test."), 1, 1, 1, 1, min)),
        ));
    }
    m.to_vec().unwrap()
}

const IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

#[test]
fn positive_answers_expire_with_their_ttl() {
    let r = Resolver::new(Config::new(vec![server()]));
    let t0 = Instant::from_secs(1000);
    let (mut res, step) = r.start("a.test", Family::V4, t0);
    let q = question_of(&step);
    assert_eq!(q.queries()[0].name().to_ascii(), "a.test.");
    assert_eq!(q.queries()[0].query_type(), RecordType::A);
    assert!(q.recursion_desired());
    let bytes = reply(&q, ResponseCode::NoError, &[("a.test.", 30, IP)], None);
    let Some(Step::Done(Ok(a))) = res.on_reply(&r, server(), &bytes, t0) else {
        panic!()
    };
    assert_eq!((a.addrs, a.ttl), (vec![IpAddr::V4(IP)], 30));
    // 29 s later: from the cache, 1 s left.
    let (_, step) = r.start("A.TEST.", Family::V4, t0 + Duration::from_secs(29));
    let Step::Done(Ok(a)) = step else {
        panic!("{step:?}")
    };
    assert_eq!((a.source, a.ttl), (Source::Cache, 1));
    // At 30 s it has expired: a query again.
    let (_, step) = r.start("a.test", Family::V4, t0 + Duration::from_secs(30));
    assert!(matches!(step, Step::Send(_)), "{step:?}");
}

#[test]
fn negative_answers_last_the_soa_minimum() {
    let r = Resolver::new(Config::new(vec![server()]));
    let t0 = Instant::from_secs(5);
    let (mut res, step) = r.start("gone.test", Family::V4, t0);
    let q = question_of(&step);
    // SOA TTL 300, MINIMUM 20: cached 20 s.
    let bytes = reply(&q, ResponseCode::NXDomain, &[], Some((300, 20)));
    let Some(Step::Done(Err(e))) = res.on_reply(&r, server(), &bytes, t0) else {
        panic!()
    };
    assert_eq!(
        e,
        Error::NxDomain {
            name: "gone.test".into()
        }
    );
    let (_, step) = r.start("gone.test", Family::V4, t0 + Duration::from_secs(19));
    assert!(
        matches!(step, Step::Done(Err(Error::NxDomain { .. }))),
        "{step:?}"
    );
    let (_, step) = r.start("gone.test", Family::V4, t0 + Duration::from_secs(20));
    assert!(matches!(step, Step::Send(_)));
    // Without an SOA nothing is cached.
    let (mut res, step) = r.start("nosoa.test", Family::V4, t0);
    let q = question_of(&step);
    let bytes = reply(&q, ResponseCode::NXDomain, &[], None);
    assert!(matches!(
        res.on_reply(&r, server(), &bytes, t0),
        Some(Step::Done(Err(_)))
    ));
    let (_, step) = r.start("nosoa.test", Family::V4, t0);
    assert!(matches!(step, Step::Send(_)));
}

#[test]
fn replies_that_do_not_match_are_ignored() {
    let r = Resolver::new(Config::new(vec![server()]));
    let t0 = Instant::ZERO;
    let (mut res, step) = r.start("a.test", Family::V4, t0);
    let q = question_of(&step);
    let good = reply(&q, ResponseCode::NoError, &[("a.test.", 30, IP)], None);
    // From another address or port.
    let other: SocketAddr = "192.0.2.54:53".parse().unwrap();
    assert!(res.on_reply(&r, other, &good, t0).is_none());
    let port: SocketAddr = "192.0.2.53:5353".parse().unwrap();
    assert!(res.on_reply(&r, port, &good, t0).is_none());
    // Another ID.
    let mut wrong = Message::from_vec(&good).unwrap();
    wrong.set_id(q.id() ^ 1);
    assert!(res
        .on_reply(&r, server(), &wrong.to_vec().unwrap(), t0)
        .is_none());
    // The question itself, echoed (not a response).
    let mut echo = Message::from_vec(&good).unwrap();
    echo.set_message_type(MessageType::Query);
    assert!(res
        .on_reply(&r, server(), &echo.to_vec().unwrap(), t0)
        .is_none());
    // Garbage.
    assert!(res.on_reply(&r, server(), &[1, 2, 3], t0).is_none());
    // Then the real one still counts.
    assert!(matches!(
        res.on_reply(&r, server(), &good, t0),
        Some(Step::Done(Ok(_)))
    ));
}

#[test]
fn question_name_type_and_class_are_checked() {
    let name = Name::from_ascii("a.test.").unwrap();
    let q = Question {
        id: 7,
        name: name.clone(),
        family: Family::V4,
    };
    let base = Message::from_vec(&q.encode()).unwrap();
    let with = |f: &dyn Fn(&mut hickory_proto::op::Query)| {
        let mut m = base.clone();
        m.set_message_type(MessageType::Response);
        let mut qq = m.take_queries();
        f(&mut qq[0]);
        m.add_queries(qq);
        m.to_vec().unwrap()
    };
    assert_eq!(
        check_response(&q, &with(&|_| {})),
        Ok(Reply::NoData { ttl: None })
    );
    assert_eq!(
        check_response(
            &q,
            &with(&|x| {
                x.set_name(Name::from_ascii("b.test.").unwrap());
            })
        ),
        Err(Mismatch::WrongQuestion)
    );
    assert_eq!(
        check_response(
            &q,
            &with(&|x| {
                x.set_query_type(RecordType::AAAA);
            })
        ),
        Err(Mismatch::WrongQuestion)
    );
    assert_eq!(
        check_response(
            &q,
            &with(&|x| {
                x.set_query_class(DNSClass::CH);
            })
        ),
        Err(Mismatch::WrongQuestion)
    );
    // Case differences in the echoed name are fine (RFC 4343).
    assert_eq!(
        check_response(
            &q,
            &with(&|x| {
                x.set_name(Name::from_ascii("A.TEST.").unwrap());
            })
        ),
        Ok(Reply::NoData { ttl: None })
    );
}

#[test]
fn truncation_asks_the_same_question_over_tcp() {
    let r = Resolver::new(Config::new(vec![server()]));
    let (mut res, step) = r.start("big.test", Family::V4, Instant::ZERO);
    let q = question_of(&step);
    let mut m = Message::from_vec(&reply(&q, ResponseCode::NoError, &[], None)).unwrap();
    m.set_truncated(true);
    let Some(Step::Send(att)) = res.on_reply(&r, server(), &m.to_vec().unwrap(), Instant::ZERO)
    else {
        panic!()
    };
    assert_eq!((att.transport, att.server), (Transport::Tcp, server()));
    let q2 = Message::from_vec(&att.message).unwrap();
    assert_eq!(q2.queries(), q.queries());
}

#[test]
fn timeouts_rotate_through_servers_then_give_up() {
    let s2: SocketAddr = "192.0.2.54:53".parse().unwrap();
    let r = Resolver::new(Config::new(vec![server(), s2]).with_attempts(2));
    let (mut res, step) = r.start("a.test", Family::V4, Instant::ZERO);
    let mut asked = vec![match step {
        Step::Send(a) => a.server,
        _ => panic!(),
    }];
    loop {
        match res.on_timeout(&r, Instant::ZERO) {
            Step::Send(a) => asked.push(a.server),
            Step::Done(e) => {
                assert!(matches!(e, Err(Error::Timeout { .. })), "{e:?}");
                break;
            }
        }
    }
    assert_eq!(asked, vec![server(), s2, server(), s2]);
}

#[test]
fn aaaa_answers_parse_for_when_ipv6_lands() {
    let r = Resolver::new(Config::new(vec![server()]));
    let (mut res, step) = r.start("six.test", Family::V6, Instant::ZERO);
    let q = question_of(&step);
    assert_eq!(q.queries()[0].query_type(), RecordType::AAAA);
    let ip: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .add_query(q.queries()[0].clone())
        .add_answer(Record::from_rdata(
            Name::from_ascii("six.test.").unwrap(),
            60,
            RData::AAAA(hickory_proto::rr::rdata::AAAA(ip)),
        ))
        // An A record in an AAAA answer is not taken.
        .add_answer(Record::from_rdata(
            Name::from_ascii("six.test.").unwrap(),
            60,
            RData::A(A(IP)),
        ));
    let Some(Step::Done(Ok(a))) = res.on_reply(&r, server(), &m.to_vec().unwrap(), Instant::ZERO)
    else {
        panic!()
    };
    assert_eq!(a.addrs, vec![IpAddr::V6(ip)]);
}

#[test]
fn resolv_conf_gives_servers_timeout_and_attempts() {
    let text = "# generated\nsearch example.com\nnameserver 10.200.0.1\nnameserver 10.200.0.2 ; second\n\
                nameserver 10.200.0.3\nnameserver 10.200.0.4\noptions ndots:1 timeout:3 attempts:9 rotate\n";
    let cfg = ustack_dns::resolv_conf::parse(text).unwrap();
    let want: Vec<SocketAddr> = ["10.200.0.1:53", "10.200.0.2:53", "10.200.0.3:53"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(cfg.servers, want, "MAXNS (3) servers, in order");
    assert_eq!(cfg.timeout, Duration::from_secs(3));
    assert_eq!(cfg.attempts, 5, "attempts capped at 5 (resolv.conf(5))");
    let cfg = ustack_dns::resolv_conf::parse("nameserver 192.0.2.1\n").unwrap();
    assert_eq!(cfg.timeout, Duration::from_secs(5));
    assert_eq!(cfg.attempts, 2);
    let e = ustack_dns::resolv_conf::parse("nameserver 10.0.0.300\n").unwrap_err();
    assert!(e.contains("line 1") && e.contains("10.0.0.300"), "{e}");
    let e = ustack_dns::resolv_conf::parse("search x\n").unwrap_err();
    assert!(e.contains("nameserver"), "{e}");
    let e = ustack_dns::resolv_conf::parse("nameserver 1.1.1.1\noptions timeout:x\n").unwrap_err();
    assert!(e.contains("line 2") && e.contains("timeout:x"), "{e}");
}

#[test]
fn hosts_and_resolv_conf_files_are_read_and_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("ustack-dns-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n192.0.2.5 web.lan web # lab\n").unwrap();
    let h = ustack_dns::Hosts::load(&hosts).unwrap();
    assert_eq!(
        h.lookup("WEB", Family::V4),
        Some(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5))])
    );
    std::fs::write(&hosts, "ok 1\n").unwrap();
    let e = ustack_dns::Hosts::load(&hosts).unwrap_err();
    assert!(
        e.contains(&hosts.display().to_string()) && e.contains("line 1"),
        "{e}"
    );
    let missing = dir.join("absent");
    let e = ustack_dns::Hosts::load(&missing).unwrap_err();
    assert!(e.contains("absent"), "{e}");
    let rc = dir.join("resolv.conf");
    std::fs::write(&rc, "nameserver 10.0.0.2\n").unwrap();
    let cfg = ustack_dns::resolv_conf::load(&rc).unwrap();
    assert_eq!(
        cfg.servers,
        vec!["10.0.0.2:53".parse::<SocketAddr>().unwrap()]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
