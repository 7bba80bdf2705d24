//! Runtime groups on a multiqueue in-memory link (issue 19): flows stay on
//! their stack, REUSEPORT across stacks spreads connections, a full queue
//! loses no connection.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use ustack::memnet::mq_pair;
use ustack::Mode;

/// Bytes a connection numbered `id` sends: distinct per connection.
fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut x = id.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Serves `count` connections from the group listener on its own
/// thread: each sends a 4-byte id and `len` bytes, gets them back. Returns
/// (stack index, peer, id) per accepted connection.
fn echo_server(
    group: &ustack::RuntimeGroup,
    count: usize,
    len: usize,
) -> std::thread::JoinHandle<Vec<(usize, SocketAddr, u32)>> {
    let listener = group.listen("10.0.0.2:80").unwrap();
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..count {
            let (i, conn, peer) = listener.accept().unwrap();
            conns.push(std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut id = [0u8; 4];
                (&conn).read_exact(&mut id).unwrap();
                let mut buf = vec![0u8; len];
                (&conn).read_exact(&mut buf).unwrap();
                (&conn).write_all(&id).unwrap();
                (&conn).write_all(&buf).unwrap();
                // Until the client closes.
                let _ = (&conn).read(&mut id);
                (i, peer, u32::from_be_bytes(id))
            }));
        }
        for c in conns {
            seen.push(c.join().unwrap());
        }
        seen
    })
}

/// Runs `count` clients from group `a` (in turn over its stacks): returns
/// (client stack, local address, id) each.
fn clients(a: &ustack::RuntimeGroup, count: u32, len: usize) -> Vec<(usize, SocketAddr, u32)> {
    let mut out = Vec::new();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..count)
            .map(|id| {
                let (i, conn) = a.connect("10.0.0.2:80").unwrap();
                s.spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let data = payload(id, len);
                    (&conn).write_all(&id.to_be_bytes()).unwrap();
                    (&conn).write_all(&data).unwrap();
                    let mut back = vec![0u8; 4 + len];
                    (&conn).read_exact(&mut back).unwrap();
                    assert_eq!(&back[..4], &id.to_be_bytes());
                    assert!(back[4..] == data[..], "connection {id}: bytes differ");
                    (i, conn.local_addr().unwrap(), id)
                })
            })
            .collect();
        for h in hs {
            out.push(h.join().unwrap());
        }
    });
    out
}

#[test]
fn flows_stay_on_their_stack() {
    let net = mq_pair(2, 2, 0, Mode::Thread, false, |c| c).unwrap();
    let server = echo_server(&net.b, 16, 20_000);
    let sent = clients(&net.a, 16, 20_000);
    let seen = server.join().unwrap();
    let by_peer: HashMap<SocketAddr, (usize, u32)> =
        seen.iter().map(|&(i, p, id)| (p, (i, id))).collect();
    assert_eq!(by_peer.len(), 16);
    for (ci, local, id) in &sent {
        let (si, sid) = by_peer[local];
        assert_eq!(sid, *id);
        assert_eq!(
            si, *ci,
            "connection {id} from stack {ci} was served by stack {si}"
        );
    }
    // The closes' last frames may still sit in a queue, not yet read by
    // their stack's thread: wait (bounded) until every queue is drained.
    let drained = || {
        (0..2).all(|i| {
            net.a_queues[i].get().delivered == net.a.stack(i).device_stats().rx_frames
                && net.b_queues[i].get().delivered == net.b.stack(i).device_stats().rx_frames
        })
    };
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !drained() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..2 {
        let (ca, cb) = (net.a.stack(i).counters(), net.b.stack(i).counters());
        // Both stacks carried flows, each flow's frames on its own lane:
        // a frame on the wrong stack would have met a reset.
        assert_eq!(ca.tcp.active_opens, 8, "client stack {i}");
        assert_eq!(cb.tcp.passive_opens, 8, "server stack {i}");
        assert_eq!(ca.tcp.out_rsts + cb.tcp.out_rsts, 0, "resets on lane {i}");
        let (da, db) = (net.a.stack(i).device_stats(), net.b.stack(i).device_stats());
        assert_eq!(net.a_queues[i].get().delivered, da.rx_frames);
        assert_eq!(db.rx_frames, net.b_queues[i].get().delivered);
        assert!(db.rx_frames > 8 * 20_000 / 1460, "lane {i}: {db:?}");
    }
}

#[test]
fn reuseport_spreads_connections_across_stacks() {
    // One client stack, two server stacks: the link's hash spreads.
    let net = mq_pair(1, 2, 0, Mode::Thread, false, |c| c).unwrap();
    let server = echo_server(&net.b, 64, 100);
    let sent = clients(&net.a, 64, 100);
    let seen = server.join().unwrap();
    let mut ids: Vec<u32> = seen.iter().map(|s| s.2).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..64).collect::<Vec<_>>(),
        "each connection accepted once"
    );
    assert_eq!(sent.len(), 64);
    let on = |i| seen.iter().filter(|s| s.0 == i).count();
    assert!(
        on(0) >= 16 && on(1) >= 16,
        "stack 0: {}, stack 1: {}",
        on(0),
        on(1)
    );
    assert_eq!(on(0) as u64, net.b.stack(0).counters().tcp.passive_opens);
    assert_eq!(on(1) as u64, net.b.stack(1).counters().tcp.passive_opens);
}

#[test]
fn a_full_queue_loses_no_connection() {
    // Eight frames per queue: bursts overflow, TCP retransmits.
    let net = mq_pair(2, 2, 8, Mode::Thread, false, |c| c).unwrap();
    let server = echo_server(&net.b, 24, 60_000);
    let sent = clients(&net.a, 24, 60_000);
    let seen = server.join().unwrap();
    let mut ids: Vec<u32> = seen.iter().map(|s| s.2).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..24).collect::<Vec<_>>(),
        "each connection served once"
    );
    assert_eq!(sent.len(), 24);
    let dropped: u64 = (net.a_queues.iter().chain(&net.b_queues))
        .map(|q| q.get().dropped)
        .sum();
    assert!(dropped > 0, "the queues never filled");
    let retrans: u64 = (0..2)
        .map(|i| {
            net.a.stack(i).counters().tcp.retrans_segs + net.b.stack(i).counters().tcp.retrans_segs
        })
        .sum();
    assert!(retrans > 0);
}

#[test]
fn inline_stacks_run_to_completion_per_thread() {
    use ustack::posix::{AF_INET, MSG_DONTWAIT, SOCK_NONBLOCK, SOCK_STREAM};
    use ustack::Errno;
    // Each thread drives its own client and server stack, nothing else:
    // non-blocking calls only, each one a turn of the stack it names.
    let net = mq_pair(2, 2, 0, Mode::Inline, false, |c| c).unwrap();
    let listener = net.b.listen("10.0.0.2:80").unwrap();
    let done = net.a.run_per_stack(false, |i, a| {
        let b = net.b.stack(i);
        let fd = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        let dst: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(a.connect(fd, dst), Err(Errno::EINPROGRESS));
        let data = payload(i as u32, 200_000);
        let (mut off, mut got) = (0, Vec::new());
        let mut buf = vec![0u8; 65536];
        let mut srv = None;
        for _ in 0..2_000_000 {
            if srv.is_none() {
                match listener.accept_on(i) {
                    Ok((c, _)) => srv = Some(c),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            if off < data.len() {
                match a.send(fd, &data[off..], MSG_DONTWAIT) {
                    Ok(n) => off += n,
                    Err(Errno::EAGAIN) | Err(Errno::ENOTCONN) => {}
                    Err(e) => panic!("send: {e:?}"),
                }
            } else {
                let _ = a.counters(); // a turn of stack a: ACKs in, data out
            }
            if let Some(c) = &srv {
                c.set_nonblocking(true).unwrap();
                match (&*c).read(&mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            } else {
                let _ = b.counters(); // a turn of stack b
            }
            if got.len() == data.len() {
                break;
            }
        }
        a.close(fd).unwrap();
        got == data
    });
    assert_eq!(done, vec![true, true]);
    for i in 0..2 {
        assert_eq!(net.b.stack(i).counters().tcp.passive_opens, 1);
    }
}
