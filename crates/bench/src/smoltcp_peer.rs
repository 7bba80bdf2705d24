//! The same bulk transfer on smoltcp, over the same in-memory [`Wire`].

use crate::{BulkOptions, BulkResult, Source, Wire};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{
    Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium, RxToken, TxToken,
};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use std::cell::RefCell;
use std::rc::Rc;

struct Port {
    wire: Rc<RefCell<Wire>>,
    tx_dir: usize,
    caps: DeviceCapabilities,
}

struct Rx(Vec<u8>, Rc<RefCell<Wire>>);
struct Tx(Rc<RefCell<Wire>>, usize);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.0);
        self.1.borrow_mut().recycle(self.0);
        r
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = self.0.borrow_mut().buffer(len);
        let r = f(&mut b);
        self.0.borrow_mut().push(self.1, b);
        r
    }
}

impl Device for Port {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx)> {
        let f = self.wire.borrow_mut().pop(1 - self.tx_dir)?;
        Some((Rx(f, self.wire.clone()), Tx(self.wire.clone(), self.tx_dir)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx> {
        Some(Tx(self.wire.clone(), self.tx_dir))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// Runs one transfer client (10.0.0.1) → server (10.0.0.2).
pub fn run(opts: &BulkOptions) -> Result<BulkResult, String> {
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = opts.mtu;
    if opts.offload {
        caps.checksum = ChecksumCapabilities::ignored();
    } else {
        let mut c = ChecksumCapabilities::default();
        c.ipv4 = Checksum::Both;
        c.tcp = Checksum::Both;
        caps.checksum = c;
    }
    let mut ports = [0, 1].map(|d| Port {
        wire: wire.clone(),
        tx_dir: d,
        caps: caps.clone(),
    });
    let now = std::time::Instant::now();
    let clock = move || Instant::from_micros(now.elapsed().as_micros() as i64);
    let mut ifaces: Vec<Interface> = (0..2u8)
        .map(|i| {
            let mut cfg = Config::new(HardwareAddress::Ip);
            cfg.random_seed = 1 + u64::from(i);
            let mut iface = Interface::new(cfg, &mut ports[i as usize], clock());
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 1 + i), 24))
                    .unwrap()
            });
            iface
        })
        .collect();
    let socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; opts.buf]),
            tcp::SocketBuffer::new(vec![0; opts.buf]),
        )
    };
    let mut sockets = [SocketSet::new(vec![]), SocketSet::new(vec![])];
    let client = sockets[0].add(socket());
    let server = sockets[1].add(socket());
    sockets[1]
        .get_mut::<tcp::Socket>(server)
        .listen(5001)
        .map_err(|e| format!("listen: {e}"))?;
    sockets[0]
        .get_mut::<tcp::Socket>(client)
        .connect(
            ifaces[0].context(),
            (IpAddress::v4(10, 0, 0, 2), 5001),
            40000,
        )
        .map_err(|e| format!("connect: {e}"))?;

    let src = Source::new(opts.chunk);
    let mut sink = vec![0u8; opts.chunk];
    let (mut sent, mut received) = (0u64, 0u64);
    let start = std::time::Instant::now();
    let deadline = start + opts.timeout;
    while received < opts.bytes {
        for i in 0..2 {
            ifaces[i].poll(clock(), &mut ports[i], &mut sockets[i]);
        }
        let c = sockets[0].get_mut::<tcp::Socket>(client);
        while sent < opts.bytes && c.can_send() {
            let chunk = src.chunk(sent, opts.bytes - sent);
            let n = c.send_slice(chunk).map_err(|e| format!("send: {e}"))?;
            if n == 0 {
                break;
            }
            sent += n as u64;
        }
        let s = sockets[1].get_mut::<tcp::Socket>(server);
        while s.can_recv() {
            let n = s.recv_slice(&mut sink).map_err(|e| format!("recv: {e}"))?;
            if n == 0 {
                break;
            }
            if !src.verify(&sink[..n], received) {
                return Err(format!(
                    "smoltcp delivered wrong bytes at offset {received}"
                ));
            }
            received += n as u64;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "smoltcp transfer stalled: {received} of {} bytes",
                opts.bytes
            ));
        }
    }
    let frames = wire.borrow().frames;
    Ok(BulkResult {
        bytes: received,
        secs: start.elapsed().as_secs_f64(),
        frames,
    })
}
