//! smoltcp on the same TUN path as ustack in `tun_bench`: a smoltcp
//! interface on a [`Tun`] (plain frames, one read(2)/write(2) per packet,
//! software checksums), one thread polling it and a socket, waiting in
//! poll(2) on the TUN's fd or smoltcp's next deadline.

use smoltcp::iface::{Config, Interface, PollResult, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;
use ustack_devices::{Device as _, Tun};

struct Port {
    tun: Rc<RefCell<Tun>>,
    buf: Vec<u8>,
    caps: DeviceCapabilities,
}

struct Rx(Vec<u8>);
struct Tx(Rc<RefCell<Tun>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        // A full queue drops the frame (as smoltcp's own TunTapInterface
        // does); TCP retransmits it.
        let _ = self.0.borrow_mut().send(ustack_core::Instant::ZERO, &b);
        r
    }
}

impl Device for Port {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx)> {
        let n = self
            .tun
            .borrow_mut()
            .recv(ustack_core::Instant::ZERO, &mut self.buf)
            .ok()??;
        Some((Rx(self.buf[..n].to_vec()), Tx(self.tun.clone())))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx> {
        Some(Tx(self.tun.clone()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// smoltcp connects to `peer` and sends.
    Send,
    /// smoltcp listens on `peer`'s port and receives.
    Receive,
}

/// Runs one transfer of `bytes` on `tun` (smoltcp at `ours`/24, socket
/// buffers of `buf` bytes); the kernel end measures it. Bounded by `timeout`.
pub fn transfer(
    tun: Tun,
    ours: std::net::Ipv4Addr,
    peer: SocketAddrV4,
    dir: Dir,
    bytes: u64,
    buf: usize,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let fd = tun.as_raw_fd().ok_or("the TUN has no fd")?;
    let mtu = tun.mtu();
    let tun = Rc::new(RefCell::new(tun));
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = mtu;
    let mut port = Port {
        tun,
        buf: vec![0u8; mtu],
        caps,
    };
    let t0 = std::time::Instant::now();
    let clock = move || Instant::from_micros(t0.elapsed().as_micros() as i64);
    let mut cfg = Config::new(HardwareAddress::Ip);
    cfg.random_seed = 7;
    let mut iface = Interface::new(cfg, &mut port, clock());
    let o = ours.octets();
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(o[0], o[1], o[2], o[3]), 24))
            .unwrap()
    });
    let mut sockets = SocketSet::new(vec![]);
    let h = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    ));
    let p = peer.ip().octets();
    match dir {
        Dir::Send => sockets
            .get_mut::<tcp::Socket>(h)
            .connect(
                iface.context(),
                (
                    IpAddress::Ipv4(Ipv4Address::new(p[0], p[1], p[2], p[3])),
                    peer.port(),
                ),
                40000,
            )
            .map_err(|e| format!("smoltcp connect: {e}"))?,
        Dir::Receive => sockets
            .get_mut::<tcp::Socket>(h)
            .listen(peer.port())
            .map_err(|e| format!("smoltcp listen: {e}"))?,
    }
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sink = vec![0u8; 64 * 1024];
    let (mut sent, mut got) = (0u64, 0u64);
    let mut closed = false;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = clock();
        let mut progress = iface.poll(now, &mut port, &mut sockets) != PollResult::None;
        let s = sockets.get_mut::<tcp::Socket>(h);
        match dir {
            Dir::Send => {
                while sent < bytes && s.can_send() {
                    let n = (bytes - sent).min(chunk.len() as u64) as usize;
                    let k = s.send_slice(&chunk[..n]).map_err(|e| e.to_string())?;
                    if k == 0 {
                        break;
                    }
                    sent += k as u64;
                    progress = true;
                }
                if sent == bytes && !closed {
                    s.close();
                    closed = true;
                }
                // Done once the kernel has it all (and has closed too).
                if closed && !s.is_open() {
                    return Ok(());
                }
            }
            Dir::Receive => {
                while s.can_recv() {
                    let k = s.recv_slice(&mut sink).map_err(|e| e.to_string())?;
                    if k == 0 {
                        break;
                    }
                    got += k as u64;
                    progress = true;
                }
                if got >= bytes || (got > 0 && !s.may_recv()) {
                    s.close();
                    // A few more polls to send the FIN.
                    for _ in 0..100 {
                        iface.poll(clock(), &mut port, &mut sockets);
                    }
                    return Ok(());
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "smoltcp over TUN stalled: sent {sent}, received {got} of {bytes}"
            ));
        }
        if !progress {
            let wait = iface
                .poll_delay(clock(), &sockets)
                .map(|d| std::time::Duration::from_micros(d.total_micros()))
                .unwrap_or(std::time::Duration::from_millis(5))
                .min(std::time::Duration::from_millis(5));
            if !wait.is_zero() {
                ustack_devices::poll_fd(fd, false, Some(wait)).map_err(|e| e.to_string())?;
            }
        }
    }
}
