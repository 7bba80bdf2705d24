//! Receiving in place (`Stack::receive_placed`, issue 14): the device
//! reads a frame over a header slot, the free tail of a receive ring and
//! a spill buffer; the next in-order segment of the connection header
//! prediction last took is made readable where it landed (no copy,
//! `link.rx_placed`), anything else is put back together and taken the
//! usual way (`link.rx_placed_fallback`), and nothing read into the ring
//! but not taken ever becomes readable.

mod segscript;

use segscript::*;
use std::net::SocketAddrV4;
use ustack_core::{Placed, RxMeta, SocketHandle, StackConfig};

const PEER_ISS: u32 = 1000;
const MSS: usize = 1460;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) % 251) as u8
}

/// An accepted connection from `sport`, with timestamps if `ts`.
fn accept(s: &mut Script, l: SocketHandle, sport: u16, ts: bool) -> (SocketHandle, u32) {
    let mut syn = seg(SYN)
        .sport(sport)
        .seq(PEER_ISS)
        .mss(MSS as u16)
        .sack_perm()
        .ws(7);
    if ts {
        syn = syn.ts(1, 0);
    }
    let _ = s.take();
    s.inject(syn);
    let sa = s.next();
    let mut ack = seg(ACK)
        .sport(sport)
        .seq(PEER_ISS + 1)
        .ack(sa.seq.wrapping_add(1))
        .win(4096);
    if ts {
        ack = ack.ts(2, sa.ts.map_or(0, |t| t.0));
    }
    s.inject(ack);
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    s.expect_silence();
    (c, sa.seq.wrapping_add(1))
}

fn open(ts: bool) -> (Script, SocketHandle, SocketHandle, u32) {
    let mut cfg: StackConfig = config();
    cfg.tcp.rcvbuf = 256 * 1024;
    let mut s = Script::with(cfg);
    let l = s.stack.tcp_open();
    s.stack.tcp_bind(l, SocketAddrV4::new(US, US_PORT)).unwrap();
    s.stack.tcp_listen(l, 8).unwrap();
    let (c, d0) = accept(&mut s, l, PEER_PORT, ts);
    (s, l, c, d0)
}

/// The peer's bytes `off..off + len` of its stream (from `sport`).
fn data(d0: u32, sport: u16, off: usize, len: usize, ts: bool) -> Seg {
    let mut x = seg(ACK | PSH)
        .sport(sport)
        .seq(PEER_ISS + 1 + off as u32)
        .ack(d0)
        .win(4096);
    if ts {
        x = x.ts(10 + off as u32, 0);
    }
    x.payload = (off..off + len).map(pattern).collect();
    x
}

/// What a device's readv(2) does: `frame` over the buffers in order,
/// cut short where they end.
fn place(s: &mut Script, frame: &[u8], csum_ok: bool) -> Placed {
    let mut rest = vec![0u8; 70_000];
    let now = s.now;
    let r = s
        .stack
        .receive_placed(now, &mut rest, |bufs| {
            let mut off = 0;
            for b in bufs.iter_mut() {
                let k = b.len().min(frame.len() - off);
                b[..k].copy_from_slice(&frame[off..off + k]);
                off += k;
            }
            Ok::<_, ()>(Some((off, RxMeta { csum_ok })))
        })
        .unwrap();
    let _ = s.take();
    r
}

fn placed(s: &Script) -> (u64, u64) {
    let c = s.stack.counters();
    (c.link.rx_placed, c.link.rx_placed_fallback)
}

/// Reads everything readable on `c` and checks it is the peer's stream
/// from `*at` on.
fn read_all(s: &mut Script, c: SocketHandle, at: &mut usize) {
    let mut buf = vec![0u8; 1 << 20];
    let n = s.stack.tcp_recv(c, &mut buf).unwrap_or(0);
    for (i, &b) in buf[..n].iter().enumerate() {
        assert_eq!(b, pattern(*at + i), "byte {} of the stream", *at + i);
    }
    *at += n;
    // Window updates go out (the receive window opens again).
    let _ = s.take();
}

fn in_place_then_fallbacks(ts: bool) {
    let (mut s, l, c, d0) = open(ts);
    let mut read = 0;
    // The first data after the handshake is never predicted (SND.WL1 is
    // its sequence number): the usual way.
    s.inject(data(d0, PEER_PORT, 0, 100, ts));
    let mut off = 100;
    // In-order data, one MSS and super-packets, all in place.
    for len in [MSS, 10 * MSS, 44 * MSS, 7] {
        let f = data(d0, PEER_PORT, off, len, ts).to_ip();
        assert_eq!(place(&mut s, &f, true), Placed::InPlace, "{len} bytes");
        off += len;
    }
    assert_eq!(placed(&s), (4, 0));
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off);

    // Out of order (a hole of one MSS): copied, queued; the ring then has
    // out-of-order data, so the hole is filled the usual way.
    let f = data(d0, PEER_PORT, off + MSS, 2 * MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::Copied);
    assert_eq!(placed(&s), (4, 1));
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off, "nothing readable past the hole");
    let f = data(d0, PEER_PORT, off, MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::NoSlot);
    s.inject_raw(&f);
    off += 3 * MSS;
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off);

    // Another connection's data: copied, and delivered to it.
    let (c2, d2) = accept(&mut s, l, PEER_PORT + 1, ts);
    s.inject(data(d2, PEER_PORT + 1, 0, 100, ts));
    let mut read2 = 0;
    // The slot is the other connection's now (it had the last segment).
    let f = data(d0, PEER_PORT, off, MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::Copied);
    off += MSS;
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off);
    let f = data(d2, PEER_PORT + 1, 100, 3 * MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::Copied);
    read_all(&mut s, c2, &mut read2);
    assert_eq!(read2, 100 + 3 * MSS);
    // The last connection is now the other one: in place there.
    let f = data(d2, PEER_PORT + 1, 100 + 3 * MSS, MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::InPlace);
    read_all(&mut s, c2, &mut read2);
    assert_eq!(read2, 100 + 4 * MSS);
    // And back.
    let f = data(d0, PEER_PORT, off, MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::Copied);
    off += MSS;
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off);
    let (p0, f0) = placed(&s);

    // Hostile or odd frames: each is copied and taken (or dropped) the
    // usual way; none makes its ring bytes readable.
    let good = data(d0, PEER_PORT, off, 2 * MSS, ts);
    let hl = good.to_ip().len() - 2 * MSS;
    let mut odd: Vec<(&str, Vec<u8>, bool)> = Vec::new();
    // IPv4 total length one byte longer than the frame.
    let mut f = good.to_ip();
    f[3] = f[3].wrapping_add(1);
    odd.push(("total length past the frame", f, true));
    // A bad TCP checksum, from a device that does not vouch for it.
    let mut f = good.to_ip();
    f[hl + 5] ^= 0xff;
    odd.push(("bad checksum, not vouched", f, false));
    // A data offset shorter than the fixed header.
    let mut f = good.to_ip();
    f[20 + 12] = 0x40;
    odd.push(("data offset 16", f, true));
    // Not a TCP segment: protocol 17 in the header.
    let mut f = good.to_ip();
    f[9] = 17;
    odd.push(("UDP protocol number", f, true));
    // Old data (a retransmission of what was taken).
    let f = data(d0, PEER_PORT, off - MSS, MSS, ts).to_ip();
    odd.push(("old data", f, true));
    // Headers only.
    let f = seg(ACK)
        .seq(PEER_ISS + 1 + off as u32)
        .ack(d0)
        .win(4096)
        .to_ip();
    odd.push(("pure ACK", f, true));
    // A fragment.
    let mut f = good.to_ip();
    f[6] |= 0x20;
    odd.push(("more fragments", f, true));
    for (what, f, ok) in &odd {
        assert_eq!(place(&mut s, f, *ok), Placed::Copied, "{what}");
        read_all(&mut s, c, &mut read);
        assert_eq!(read, off, "{what}: nothing new readable");
    }
    assert_eq!(placed(&s), (p0, f0 + odd.len() as u64));
    // Another header length (SACK blocks), good data: copied, taken.
    let f = good.clone().sack(&[(5, 6)]).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::Copied);
    off += 2 * MSS;
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off);

    // Bigger than the ring's free space: the rest spills, copied, and
    // what fits is taken. Fill the ring without reading first.
    let big = 44 * MSS;
    let mut filled = 0;
    loop {
        let f = data(d0, PEER_PORT, off, big, ts).to_ip();
        let r = place(&mut s, &f, true);
        if r != Placed::InPlace {
            assert_eq!(r, Placed::Copied, "spilled");
            break;
        }
        off += big;
        filled += 1;
        assert!(filled < 10, "the ring fills");
    }
    let before = read;
    read_all(&mut s, c, &mut read);
    assert!(
        read > off,
        "the part of the spilled frame that fit was taken"
    );
    assert!(read < off + big);
    assert!(read - before <= 256 * 1024);
    off = read;
    // In place again after all that.
    let (p1, f1) = placed(&s);
    let f = data(d0, PEER_PORT, off, 20 * MSS, ts).to_ip();
    assert_eq!(place(&mut s, &f, true), Placed::InPlace);
    off += 20 * MSS;
    read_all(&mut s, c, &mut read);
    assert_eq!(read, off);
    assert_eq!(placed(&s), (p1 + 1, f1));
}

#[test]
fn in_place_receive_without_timestamps() {
    in_place_then_fallbacks(false);
}

#[test]
fn in_place_receive_with_timestamps() {
    in_place_then_fallbacks(true);
}

/// The ring wraps: a segment's payload lands in two pieces (end of the
/// storage, then its start) and reads back whole.
#[test]
fn in_place_across_the_ring_wrap() {
    let (mut s, _l, c, d0) = open(true);
    let mut read = 0;
    s.inject(data(d0, PEER_PORT, 0, 100, true));
    let mut off = 100;
    for i in 0..60 {
        let len = 7 * MSS + i * 131;
        let f = data(d0, PEER_PORT, off, len, true).to_ip();
        assert_eq!(place(&mut s, &f, true), Placed::InPlace, "segment {i}");
        off += len;
        read_all(&mut s, c, &mut read);
        assert_eq!(read, off);
    }
    assert!(off > 2 * 256 * 1024, "went round the ring");
}

/// No ring to read into: an empty read says so, and without a connection
/// nothing is read at all.
#[test]
fn no_slot_and_empty_reads() {
    let mut s = Script::with(config());
    let mut rest = vec![0u8; 100];
    let now = s.now;
    let r = s
        .stack
        .receive_placed(now, &mut rest, |_| -> Result<_, ()> {
            panic!("nothing to read into: no read")
        })
        .unwrap();
    assert_eq!(r, Placed::NoSlot);
    let (mut s, _l, _c, _d0) = open(false);
    let now = s.now;
    let r = s
        .stack
        .receive_placed(now, &mut rest, |_| Ok::<_, ()>(None))
        .unwrap();
    assert_eq!(r, Placed::Empty);
}

proptest::proptest! {
    /// Mutated and cut in-order frames, vouched for or not, read in
    /// place: never a panic, the TCBs stay consistent, nothing readable
    /// beyond what TCP took, and a good frame afterwards still goes in
    /// place or the usual way intact.
    #[test]
    fn mutated_frames_in_place_never_corrupt_the_ring(
        ts in proptest::prelude::any::<bool>(),
        frames in proptest::collection::vec((
            0usize..3,
            proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..4),
            proptest::prelude::any::<proptest::sample::Index>(),
            proptest::prelude::any::<bool>(),
        ), 1..8),
    ) {
        let (mut s, _l, c, d0) = open(ts);
        s.inject(data(d0, PEER_PORT, 0, 100, ts));
        let mut off = 100;
        let mut taken = 100;
        for (k, edits, cut, ok) in &frames {
            let len = [1, MSS, 20 * MSS][*k];
            let mut f = data(d0, PEER_PORT, off, len, ts).to_ip();
            for (at, byte) in edits {
                let i = at.index(f.len());
                f[i] = *byte;
            }
            let keep = f.len() - cut.index(f.len() / 8 + 1);
            f.truncate(keep);
            let before = s.stack.counters().link.rx_placed;
            let r = place(&mut s, &f, *ok);
            proptest::prop_assert!(r != Placed::Empty);
            if r == Placed::NoSlot {
                // No ring to read into (data queued out of order): the
                // usual way.
                s.inject_raw(&f);
            }
            if r == Placed::InPlace {
                proptest::prop_assert_eq!(s.stack.counters().link.rx_placed, before + 1);
            }
            off += len;
            let mut buf = vec![0u8; 1 << 20];
            taken += s.stack.tcp_recv(c, &mut buf).unwrap_or(0);
            let _ = s.take();
            s.stack.tcp_check_invariants();
        }
        proptest::prop_assert!(taken <= off + 4 * 20 * MSS);
    }
}
