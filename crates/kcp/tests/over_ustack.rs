//! KcpSocket on ustack's UDP against the `kcp` crate (a port of ikcp.c)
//! driven over ustack's UDP on another host, on the in-memory link with
//! seeded 5% loss each way: messages both ways, every one intact and in order.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack::memnet::MemNet;
use ustack::net::UdpSocket;
use ustack::Mode;
use ustack_devices::Impairments;
use ustack_kcp::{Config, KcpSocket};

fn message(i: u32, dir: u8) -> Vec<u8> {
    let len = 1 + (i.wrapping_mul(2_654_435_761) % 2500) as usize;
    (0..len)
        .map(|k| (k as u32 ^ i.wrapping_mul(131) ^ u32::from(dir)) as u8)
        .collect()
}

/// The reference's output: one UDP datagram per write.
struct Out(Arc<UdpSocket>, SocketAddr);
impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send_to(b, self.1);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn both_ways(fast: bool, seed: u64, n: u32) {
    #[allow(non_snake_case)]
    let N = n;
    let net = MemNet::new(
        seed,
        Impairments::none()
            .with_loss(0.05)
            .with_delay(Duration::from_millis(5)),
    );
    let a = net.host(Ipv4Addr::new(10, 0, 0, 1), Mode::Thread).unwrap();
    let b = net.host(Ipv4Addr::new(10, 0, 0, 2), Mode::Thread).unwrap();
    let a_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000));
    let b_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000));
    let cfg = if fast {
        Config::fast()
    } else {
        Config::normal()
    }
    .with_windows(128, 128);
    let mut ours = KcpSocket::bind(&a, a_addr, b_addr, 42, cfg).unwrap();

    // The reference on host b, on its own thread.
    let got_by_ref = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let bsock = Arc::new(UdpSocket::bind(&b, b_addr).unwrap());
    let peer = {
        let got = got_by_ref.clone();
        let bsock = bsock.clone();
        std::thread::spawn(move || {
            let mut k = kcp::Kcp::new(42, Out(bsock.clone(), a_addr));
            if fast {
                k.set_nodelay(true, 10, 2, true);
            }
            k.set_wndsize(128, 128);
            bsock
                .set_read_timeout(Some(Duration::from_millis(2)))
                .unwrap();
            let start = Instant::now();
            let mut next = 0;
            let mut buf = vec![0u8; 65536];
            let mut finished_at = None;
            while start.elapsed() < Duration::from_secs(120) {
                while next < N && k.wait_snd() < 128 {
                    k.send(&message(next, 2)).unwrap();
                    next += 1;
                }
                for _ in 0..64 {
                    let Ok((n, from)) = bsock.recv_from(&mut buf) else {
                        break;
                    };
                    if from == a_addr {
                        k.input(&buf[..n]).unwrap();
                    }
                }
                k.update(start.elapsed().as_millis() as u32).unwrap();
                while let Ok(n) = k.recv(&mut buf) {
                    got.lock().unwrap().push(buf[..n].to_vec());
                }
                let done =
                    got.lock().unwrap().len() == N as usize && next == N && k.wait_snd() == 0;
                match (done, finished_at) {
                    (true, None) => finished_at = Some(Instant::now()),
                    // Linger so the other side's last segments are acknowledged.
                    (true, Some(t)) if t.elapsed() > Duration::from_millis(500) => return true,
                    _ => {}
                }
            }
            false
        })
    };

    let mut got = Vec::new();
    let mut next = 0;
    let mut buf = vec![0u8; 65536];
    let start = Instant::now();
    while got.len() < N as usize {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ours got {} of {N}",
            got.len()
        );
        while next < N && ours.kcp().wait_snd() < 128 {
            ours.send(&message(next, 1)).unwrap();
            next += 1;
        }
        match ours.recv(&mut buf, Duration::from_millis(20)) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    while next < N {
        ours.send(&message(next, 1)).unwrap();
        next += 1;
        ours.flush(Duration::from_secs(60)).unwrap();
    }
    ours.flush(Duration::from_secs(60)).unwrap();
    // Keep acknowledging until the reference has all its ACKs too.
    while !peer.is_finished() && start.elapsed() < Duration::from_secs(150) {
        ours.poll(Duration::from_millis(10)).unwrap();
    }
    assert!(peer.join().unwrap(), "the reference finished");
    let want_ours: Vec<Vec<u8>> = (0..N).map(|i| message(i, 2)).collect();
    assert!(
        got == want_ours,
        "reference -> ours: a message differs or is out of order"
    );
    let want_ref: Vec<Vec<u8>> = (0..N).map(|i| message(i, 1)).collect();
    assert!(
        *got_by_ref.lock().unwrap() == want_ref,
        "ours -> reference: a message differs or is out of order"
    );
    let st = ours.kcp().stats();
    assert!(st.timeout_retransmits + st.fast_retransmits > 0, "{st:?}");
    eprintln!(
        "fast {fast}: {N} messages each way in {:?}; ours {st:?}",
        start.elapsed()
    );
}

#[test]
fn nodelay_both_ways_over_ustack_udp_with_5pct_loss() {
    both_ways(true, 5, 400);
}

#[test]
fn normal_both_ways_over_ustack_udp_with_5pct_loss() {
    both_ways(false, 6, 40);
}
