//! The resolver against a DNS server that runs on ustack itself, on the
//! in-memory link (with loss where said): the server (`common`) is
//! hickory-proto on ustack's UDP and TCP sockets.

use hickory_proto::op::Message;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ustack::net::UdpSocket;
use ustack::Mode;
use ustack_dns::{getaddrinfo, AddrInfoHints, Config, Error, Family, Hosts, Resolver, Source};

mod common;
use common::*;

#[test]
fn a_record_under_loss_then_from_the_cache() {
    let (_net, c, s) = net(0.2, 7);
    let srv = start_server(&s, zone());
    let r = resolver();
    let a = r.lookup(&c, "WWW.test", Family::V4).unwrap();
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    assert_eq!(a.canonical, "www.test");
    assert_eq!(a.source, Source::Server(server_addr(SERVER)));
    assert!(a.ttl <= 60 && a.ttl > 0);
    let asked = srv.udp_queries.load(Ordering::Relaxed);
    let b = r.lookup(&c, "www.test.", Family::V4).unwrap();
    assert_eq!(b.source, Source::Cache);
    assert_eq!(b.addrs, a.addrs);
    assert_eq!(
        srv.udp_queries.load(Ordering::Relaxed),
        asked,
        "the cache answered"
    );
}

#[test]
fn cname_chain_followed_in_one_answer_and_across_queries() {
    let (_net, c, s) = net(0.1, 3);
    let _srv = start_server(&s, zone());
    let a = resolver().lookup(&c, "alias.test", Family::V4).unwrap();
    assert_eq!(a.canonical, "www.test");
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    drop(_srv);
    // A server that answers only the CNAME: the resolver asks for its target.
    let srv = start_server(
        &s,
        Zone {
            cname_only: true,
            ..zone()
        },
    );
    let a = resolver().lookup(&c, "alias.test", Family::V4).unwrap();
    assert_eq!(a.canonical, "www.test");
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    assert!(
        srv.udp_queries.load(Ordering::Relaxed) >= 3,
        "alias, middle, www"
    );
}

#[test]
fn nxdomain_is_cached_for_the_soa_minimum() {
    let (_net, c, s) = net(0.1, 5);
    let srv = start_server(&s, zone());
    let r = resolver();
    let e = r.lookup(&c, "nope.test", Family::V4).unwrap_err();
    assert_eq!(
        e,
        Error::NxDomain {
            name: "nope.test".into()
        }
    );
    let asked = srv.udp_queries.load(Ordering::Relaxed);
    assert!(asked >= 1);
    let e = r.lookup(&c, "NOPE.test.", Family::V4).unwrap_err();
    assert!(matches!(e, Error::NxDomain { .. }));
    assert_eq!(
        srv.udp_queries.load(Ordering::Relaxed),
        asked,
        "answered from the negative cache"
    );
    // NODATA (the name exists, no AAAA) is cached as well.
    let e = r.lookup(&c, "www.test", Family::V6).unwrap_err();
    assert!(matches!(e, Error::NoData { .. }), "{e:?}");
    let asked = srv.udp_queries.load(Ordering::Relaxed);
    assert!(r.lookup(&c, "www.test", Family::V6).is_err());
    assert_eq!(srv.udp_queries.load(Ordering::Relaxed), asked);
}

#[test]
fn truncated_answer_is_asked_again_over_tcp() {
    let (_net, c, s) = net(0.05, 11);
    let srv = start_server(&s, zone());
    let a = resolver().lookup(&c, "many.test", Family::V4).unwrap();
    assert_eq!(a.addrs.len(), 60);
    assert!(srv.tcp_queries.load(Ordering::Relaxed) >= 1);
}

#[test]
fn spoofed_and_mismatched_replies_are_ignored() {
    let (_net, c, s) = net(0.0, 13);
    let _srv = start_server(
        &s,
        Zone {
            spoof: true,
            ..zone()
        },
    );
    let a = resolver().lookup(&c, "www.test", Family::V4).unwrap();
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
}

#[test]
fn a_silent_or_failing_server_is_skipped_for_the_next() {
    let (net, c, s) = net(0.0, 17);
    let _srv = start_server(&s, zone());
    // 10.0.0.3 is on the link but serves nothing (ICMP port unreachable);
    // 10.0.0.9 is nobody.
    let s2 = net.host(SERVER2, Mode::Thread).unwrap();
    let r = Resolver::new(
        Config::new(vec![
            server_addr(Ipv4Addr::new(10, 0, 0, 9)),
            server_addr(SERVER2),
            server_addr(SERVER),
        ])
        .with_timeout(Duration::from_millis(200))
        .with_attempts(1),
    );
    let a = r.lookup(&c, "www.test", Family::V4).unwrap();
    assert_eq!(a.source, Source::Server(server_addr(SERVER)));
    // Every server silent: a timeout that says so, after every try.
    let r = Resolver::new(
        Config::new(vec![server_addr(Ipv4Addr::new(10, 0, 0, 9))])
            .with_timeout(Duration::from_millis(100))
            .with_attempts(2),
    );
    let e = r.lookup(&c, "www.test", Family::V4).unwrap_err();
    assert!(matches!(e, Error::Timeout { tries: 2, .. }), "{e:?}");
    // SERVFAIL from the only server.
    let _fail = start_server(
        &s2,
        Zone {
            servfail: true,
            ..zone()
        },
    );
    let r = Resolver::new(Config::new(vec![server_addr(SERVER2)]).with_attempts(1));
    let e = r.lookup(&c, "www.test", Family::V4).unwrap_err();
    assert!(matches!(e, Error::ServerError { .. }), "{e:?}");
}

#[test]
fn hosts_map_and_literals_need_no_server() {
    let (_net, c, _s) = net(0.0, 19);
    let hosts = Hosts::parse("# comment\n192.0.2.7  db.local db\n").unwrap();
    let r = Resolver::new(Config::new(vec![]).with_hosts(hosts));
    let a = r.lookup(&c, "DB", Family::V4).unwrap();
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))]);
    assert_eq!(a.source, Source::Hosts);
    let a = r.lookup(&c, "192.0.2.99", Family::V4).unwrap();
    assert_eq!(a.source, Source::Literal);
    assert_eq!(
        r.lookup(&c, "other", Family::V4).unwrap_err(),
        Error::NoServers
    );
    let e = Hosts::parse("300.1.1.1 x\n").unwrap_err();
    assert!(e.contains("line 1") && e.contains("300.1.1.1"), "{e}");
    let e = r.lookup(&c, "a..b", Family::V4).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e:?}");
}

#[test]
fn getaddrinfo_gives_socket_addresses_and_eai_codes() {
    let (_net, c, s) = net(0.05, 23);
    let _srv = start_server(&s, zone());
    let r = resolver();
    let hints = AddrInfoHints {
        family: libc::AF_INET,
        socktype: libc::SOCK_STREAM,
        flags: libc::AI_CANONNAME,
        ..AddrInfoHints::default()
    };
    let ai = getaddrinfo(&c, &r, Some("alias.test"), Some("http"), Some(&hints)).unwrap();
    assert_eq!(ai.len(), 1);
    assert_eq!(ai[0].addr, "192.0.2.10:80".parse::<SocketAddr>().unwrap());
    assert_eq!(ai[0].socktype, libc::SOCK_STREAM);
    assert_eq!(ai[0].canonname.as_deref(), Some("www.test"));
    let e = getaddrinfo(&c, &r, Some("nope.test"), Some("80"), Some(&hints)).unwrap_err();
    assert_eq!(e.code, libc::EAI_NONAME);
    let e = getaddrinfo(&c, &r, Some("www.test"), Some("gopherish"), Some(&hints)).unwrap_err();
    assert_eq!(e.code, libc::EAI_SERVICE);
    let ai = getaddrinfo(
        &c,
        &r,
        None,
        Some("53"),
        Some(&AddrInfoHints {
            family: libc::AF_INET,
            flags: libc::AI_PASSIVE,
            ..AddrInfoHints::default()
        }),
    )
    .unwrap();
    assert_eq!(ai.len(), 2, "stream and datagram");
    assert!(ai
        .iter()
        .all(|a| a.addr == "0.0.0.0:53".parse::<SocketAddr>().unwrap()));
}

#[test]
fn query_ids_and_source_ports_vary() {
    let (_net, c, s) = net(0.0, 29);
    let seen: Arc<Mutex<Vec<(u16, u16)>>> = Arc::default();
    let sock = UdpSocket::bind(&s, "0.0.0.0:53").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let r = Resolver::new(
        Config::new(vec![server_addr(SERVER)])
            .with_timeout(Duration::from_millis(30))
            .with_attempts(1)
            .with_cache_size(0),
    );
    for i in 0..8 {
        let _ = r.lookup(&c, &format!("n{i}.test"), Family::V4);
        let mut buf = [0u8; 512];
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let m = Message::from_vec(&buf[..n]).unwrap();
            seen.lock().unwrap().push((m.id(), from.port()));
        }
    }
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 6, "{seen:?}");
    let ids: std::collections::HashSet<_> = seen.iter().map(|s| s.0).collect();
    let ports: std::collections::HashSet<_> = seen.iter().map(|s| s.1).collect();
    assert!(ids.len() >= seen.len() - 1, "IDs repeat: {seen:?}");
    assert!(ports.len() >= seen.len() - 1, "ports repeat: {seen:?}");
    assert!(seen.iter().all(|s| s.1 >= 1024));
}
