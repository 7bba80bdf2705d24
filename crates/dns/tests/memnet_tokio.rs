//! AsyncResolver (the tokio entry point) against the DNS server on ustack
//! of `common`, on the in-memory link with loss, on both tokio runtime
//! flavours: answers, the cache, the negative cache, CNAME chains, TCP
//! after truncation, spoofs ignored, silent servers skipped.

mod common;
use common::*;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use ustack::Runtime;
use ustack_dns::{AsyncResolver, Config, Error, Family, Resolver, Source};

/// Bound on a whole lookup, so a lost wake-up fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

fn resolver_on(c: &Runtime) -> AsyncResolver {
    AsyncResolver::new(c, resolver())
}

async fn lookup(r: &AsyncResolver, name: &str, f: Family) -> Result<ustack_dns::Answer, Error> {
    timeout(LIMIT, r.lookup(name, f))
        .await
        .expect("lookup ended in time")
}

async fn answer_then_cache(loss: f64, seed: u64) {
    let (_net, c, s) = net(loss, seed);
    let srv = start_server(&s, zone());
    let r = resolver_on(&c);
    let a = lookup(&r, "WWW.test", Family::V4).await.unwrap();
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    assert_eq!(a.canonical, "www.test");
    assert_eq!(a.source, Source::Server(server_addr(SERVER)));
    assert!(a.ttl <= 60 && a.ttl > 0, "{}", a.ttl);
    let asked = srv.udp_queries.load(Ordering::Relaxed);
    // A clone shares the cache.
    let b = lookup(&r.clone(), "www.test.", Family::V4).await.unwrap();
    assert_eq!(b.source, Source::Cache);
    assert_eq!(b.addrs, a.addrs);
    assert_eq!(srv.udp_queries.load(Ordering::Relaxed), asked);
    // A CNAME chain answered in one reply.
    let a = lookup(&r, "alias.test", Family::V4).await.unwrap();
    assert_eq!(a.canonical, "www.test");
    assert_eq!(
        r.lookup_ipv4("alias.test").await.unwrap(),
        vec![Ipv4Addr::new(192, 0, 2, 10)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn answer_under_loss_then_cache_current_thread() {
    answer_then_cache(0.2, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_under_loss_then_cache_multi_thread() {
    answer_then_cache(0.2, 8).await;
}

async fn negative_cache(seed: u64) {
    let (_net, c, s) = net(0.1, seed);
    let srv = start_server(&s, zone());
    let r = resolver_on(&c);
    let e = lookup(&r, "nope.test", Family::V4).await.unwrap_err();
    assert_eq!(
        e,
        Error::NxDomain {
            name: "nope.test".into()
        }
    );
    let asked = srv.udp_queries.load(Ordering::Relaxed);
    assert!(asked >= 1);
    let e = lookup(&r, "NOPE.test.", Family::V4).await.unwrap_err();
    assert!(matches!(e, Error::NxDomain { .. }), "{e:?}");
    assert_eq!(
        srv.udp_queries.load(Ordering::Relaxed),
        asked,
        "answered from the negative cache (RFC 2308)"
    );
    // NODATA too.
    let e = lookup(&r, "www.test", Family::V6).await.unwrap_err();
    assert!(matches!(e, Error::NoData { .. }), "{e:?}");
    let asked = srv.udp_queries.load(Ordering::Relaxed);
    assert!(lookup(&r, "www.test", Family::V6).await.is_err());
    assert_eq!(srv.udp_queries.load(Ordering::Relaxed), asked);
}

#[tokio::test(flavor = "current_thread")]
async fn nxdomain_and_nodata_cached_current_thread() {
    negative_cache(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_cached_multi_thread() {
    negative_cache(6).await;
}

async fn truncation(seed: u64) {
    let (_net, c, s) = net(0.05, seed);
    let srv = start_server(&s, zone());
    let r = resolver_on(&c);
    let a = lookup(&r, "many.test", Family::V4).await.unwrap();
    assert_eq!(a.addrs.len(), 60);
    assert_eq!(a.addrs[59], IpAddr::V4(Ipv4Addr::new(198, 51, 100, 60)));
    assert!(
        srv.tcp_queries.load(Ordering::Relaxed) >= 1,
        "asked over TCP"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn truncated_answer_asked_again_over_tcp_current_thread() {
    truncation(11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_answer_asked_again_over_tcp_multi_thread() {
    truncation(12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofs_ignored_and_concurrent_lookups_share_the_cache() {
    let (_net, c, s) = net(0.0, 13);
    let _srv = start_server(
        &s,
        Zone {
            spoof: true,
            ..zone()
        },
    );
    let r = resolver_on(&c);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { lookup(&r, "www.test", Family::V4).await })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap().unwrap();
        assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))]);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn silent_servers_skipped_and_timeouts_counted() {
    let (_net, c, s) = net(0.0, 17);
    let _srv = start_server(&s, zone());
    let r = AsyncResolver::from_shared(
        &c,
        Arc::new(Resolver::new(
            Config::new(vec![
                server_addr(Ipv4Addr::new(10, 0, 0, 9)),
                server_addr(SERVER),
            ])
            .with_timeout(Duration::from_millis(200))
            .with_attempts(1),
        )),
    );
    let t0 = tokio::time::Instant::now();
    let a = lookup(&r, "www.test", Family::V4).await.unwrap();
    assert_eq!(a.source, Source::Server(server_addr(SERVER)));
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "waited out the first"
    );
    let r = AsyncResolver::new(
        &c,
        Resolver::new(
            Config::new(vec![server_addr(Ipv4Addr::new(10, 0, 0, 9))])
                .with_timeout(Duration::from_millis(100))
                .with_attempts(3),
        ),
    );
    let e = lookup(&r, "www.test", Family::V4).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { tries: 3, .. }), "{e:?}");
}
