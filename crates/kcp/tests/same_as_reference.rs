//! Conformance: the same message workload through two of ours and through
//! two of the `kcp` crate (a port of ikcp.c), on the same simulated link
//! with the same seeded loss, gives the same delivery time for every
//! message, in normal and in nodelay mode.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;
use ustack_kcp::{Config, Kcp};

#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<Vec<u8>>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

trait K {
    fn send(&mut self, b: &[u8]);
    fn input(&mut self, b: &[u8]);
    fn update(&mut self, t: u32) -> Vec<Vec<u8>>;
    fn recv(&mut self, b: &mut [u8]) -> Option<usize>;
}
struct Ours(Kcp);
impl K for Ours {
    fn send(&mut self, b: &[u8]) {
        self.0.send(b).unwrap();
    }
    fn input(&mut self, b: &[u8]) {
        let _ = self.0.input(b);
    }
    fn update(&mut self, t: u32) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        self.0.update(t, &mut |d| v.push(d.to_vec()));
        v
    }
    fn recv(&mut self, b: &mut [u8]) -> Option<usize> {
        self.0.recv(b).ok()
    }
}
struct Ref(kcp::Kcp<Sink>, Sink);
impl K for Ref {
    fn send(&mut self, b: &[u8]) {
        self.0.send(b).unwrap();
    }
    fn input(&mut self, b: &[u8]) {
        let _ = self.0.input(b);
    }
    fn update(&mut self, t: u32) -> Vec<Vec<u8>> {
        self.0.update(t).unwrap();
        self.1 .0.borrow_mut().drain(..).collect()
    }
    fn recv(&mut self, b: &mut [u8]) -> Option<usize> {
        self.0.recv(b).ok()
    }
}

fn run(mut a: Box<dyn K>, mut b: Box<dyn K>, owd: u32, loss: u64) -> Vec<f64> {
    let mut ab: VecDeque<(u32, Vec<u8>)> = VecDeque::new();
    let mut ba: VecDeque<(u32, Vec<u8>)> = VecDeque::new();
    let mut x: u64 = 12345;
    let mut lat = Vec::new();
    let mut buf = vec![0u8; 4096];
    let n = 300u32;
    for t in 0..200_000u32 {
        if t % 20 == 0 && t / 20 < n {
            let mut m = vec![0u8; 100];
            m[..4].copy_from_slice(&t.to_le_bytes());
            a.send(&m);
        }
        while ab.front().is_some_and(|p| p.0 <= t) {
            let d = ab.pop_front().unwrap().1;
            b.input(&d);
        }
        while ba.front().is_some_and(|p| p.0 <= t) {
            let d = ba.pop_front().unwrap().1;
            a.input(&d);
        }
        for d in a.update(t) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 100 >= loss {
                ab.push_back((t + owd, d));
            }
        }
        for d in b.update(t) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 100 >= loss {
                ba.push_back((t + owd, d));
            }
        }
        while let Some(k) = b.recv(&mut buf) {
            assert_eq!(k, 100);
            let s = u32::from_le_bytes(buf[..4].try_into().unwrap());
            lat.push((t - s) as f64);
        }
        if lat.len() == n as usize {
            break;
        }
    }
    lat
}

#[test]
fn every_message_arrives_when_the_reference_delivers_it() {
    for fast in [false, true] {
        for (owd, loss) in [(50, 0), (50, 5), (10, 5), (10, 20)] {
            let cfg = if fast {
                Config::fast()
            } else {
                Config {
                    interval: 40,
                    ..Config::normal()
                }
            }
            .with_windows(128, 128);
            let o = run(
                Box::new(Ours(Kcp::new(1, cfg))),
                Box::new(Ours(Kcp::new(1, cfg))),
                owd,
                loss,
            );
            let mk = || {
                let s = Sink::default();
                let mut k = kcp::Kcp::new(1, s.clone());
                if fast {
                    k.set_nodelay(true, 10, 2, true)
                } else {
                    k.set_nodelay(false, 40, 0, false)
                };
                k.set_wndsize(128, 128);
                Box::new(Ref(k, s))
            };
            let r = run(mk(), mk(), owd, loss);
            let avg = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
            eprintln!(
                "fast {fast} owd {owd} loss {loss}: ours {:.1} ms, reference {:.1} ms",
                avg(&o),
                avg(&r)
            );
            assert_eq!(o.len(), 300);
            assert!(
                o == r,
                "fast {fast} owd {owd} loss {loss}: delivery times differ from the reference"
            );
        }
    }
}
