//! The resolver on ustack, over a TUN device into a network namespace,
//! against the kernel-side `dnsmasq`: A, CNAME, NXDOMAIN (cached), and a
//! name with so many addresses that the UDP answer is truncated and the
//! resolver asks again over TCP. Needs root, /dev/net/tun, iproute2 and
//! dnsmasq; otherwise SKIPPED (a failure under USTACK_REQUIRE_TOOLS=1).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack::{Mode, Runtime};
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Clock, KernelIf, NetNs, TunOptions};
use ustack_dns::{Config, Error, Family, Resolver, Source};

fn find_tool(tool: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// dnsmasq in the namespace, killed on drop; its log collected.
struct Dnsmasq {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    fn queries(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The count of log lines with `needle` once it reaches `n`, or after
    /// 5 s (dnsmasq answers TCP in a child process; its lines come later).
    fn wait_queries(&self, needle: &str, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.queries(needle);
            if c >= n || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Fields drop in order: the resolver's runtime (closing the TUN), dnsmasq,
/// the files, then the namespace.
struct Lab {
    rt: Runtime,
    dns: Dnsmasq,
    dir: std::path::PathBuf,
    _ns: NetNs,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SUBNET: u8 = 41;

fn lab() -> Option<Lab> {
    if !ustack_testkit::lab_available(&["dnsmasq"], "apt-get install iproute2 dnsmasq-base") {
        return None;
    }
    let dnsmasq = find_tool("dnsmasq")?;
    ustack_testkit::remove_stale_namespaces("ustack-dns-");
    let name = format!("ustack-dns-{}-a", std::process::id());
    let ns = NetNs::create(&name).expect("create a network namespace");
    let kernel = Ipv4Addr::new(10, 232, SUBNET, 1);
    let ours = Ipv4Addr::new(10, 232, SUBNET, 2);
    let dev = TunOptions::new("ustk0")
        .mtu(1500)
        .netns(ns.path())
        .open_tun()
        .expect("open a TUN in the namespace");
    KernelIf::new("ustk0", format!("{kernel}/24").parse().unwrap())
        .mtu(1500)
        .apply(Some(&ns))
        .expect("configure the kernel side");
    ns.ip(["link", "set", "lo", "up"]).unwrap();
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    // 80 addresses for one name: over 512 bytes, so UDP truncates (RFC 1035 §4.2.1).
    let many: String = (1..=80)
        .map(|i| format!("10.9.8.{i} many.lab.test\n"))
        .collect();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, many).unwrap();
    let mut child = ns
        .command(dnsmasq)
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            "--log-queries",
            "--log-facility=-",
            "--port=53",
            // Authoritative for lab.test, so NXDOMAIN carries the SOA that
            // makes it cacheable (RFC 2308 §5; without it nothing is cached).
            "--auth-zone=lab.test",
            "--auth-server=ns.lab.test,ustk0",
            "--auth-ttl=60",
            "--domain=lab.test",
            "--host-record=www.lab.test,10.9.9.10",
            "--cname=alias.lab.test,mid.lab.test",
            "--cname=mid.lab.test,www.lab.test",
            "--local-ttl=60",
            "--neg-ttl=60",
        ])
        .arg(format!("--listen-address={kernel}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dnsmasq");
    let log = Arc::new(Mutex::new(String::new()));
    {
        let log = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let dns = Dnsmasq { child, log };
    // dnsmasq says "started" once it listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dns.log.lock().unwrap().contains("started") {
        assert!(
            Instant::now() < deadline,
            "dnsmasq did not start: {}",
            dns.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cfg = StackConfig::new(Medium::Ip, format!("{ours}/24").parse().unwrap()).with_seed(41);
    let rt = Runtime::new(Stack::new(cfg).unwrap(), dev, Clock::new(), Mode::Thread)
        .expect("start the runtime");
    Some(Lab {
        rt,
        dns,
        dir,
        _ns: ns,
    })
}

#[test]
fn resolver_against_dnsmasq_over_tun() {
    let Some(lab) = lab() else { return };
    let server = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 232, SUBNET, 1), 53));
    let r = Resolver::new(Config::new(vec![server]).with_timeout(Duration::from_secs(2)));
    let log = || lab.dns.log.lock().unwrap().clone();

    let a = r
        .lookup(&lab.rt, "www.lab.test", Family::V4)
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 9, 9, 10))]);
    assert_eq!(a.source, Source::Server(server));

    let a = r
        .lookup(&lab.rt, "alias.lab.test", Family::V4)
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(a.canonical, "www.lab.test");
    assert_eq!(a.addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 9, 9, 10))]);

    let e = r.lookup(&lab.rt, "nope.lab.test", Family::V4).unwrap_err();
    assert_eq!(
        e,
        Error::NxDomain {
            name: "nope.lab.test".into()
        },
        "{}",
        log()
    );
    let asked = lab.dns.wait_queries("[A] nope.lab.test", 1);
    assert_eq!(asked, 1, "{}", log());
    let e = r.lookup(&lab.rt, "nope.lab.test", Family::V4).unwrap_err();
    assert!(matches!(e, Error::NxDomain { .. }));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.dns.queries("[A] nope.lab.test"),
        1,
        "the second NXDOMAIN came from the cache"
    );

    let a = r
        .lookup(&lab.rt, "many.lab.test", Family::V4)
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(a.addrs.len(), 80, "every address, over TCP");
    let want: Vec<IpAddr> = (1..=80)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 9, 8, i)))
        .collect();
    let mut got = a.addrs.clone();
    got.sort();
    assert_eq!(got, want);
    // dnsmasq logs a query per transport; the TCP one follows the UDP one.
    assert!(
        lab.dns.wait_queries("[A] many.lab.test", 2) >= 2,
        "{}",
        log()
    );
}
