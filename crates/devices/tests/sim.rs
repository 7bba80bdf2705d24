use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use ustack_core::time::{Duration, Instant};
use ustack_devices::{Impairments, MemLink, Sim, SimHost};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// Test hosts.
#[derive(Debug)]
enum Host {
    /// Sends scripted frames at given times; logs what arrives.
    Client {
        script: VecDeque<(Instant, Vec<u8>)>,
        got: Vec<(Instant, Vec<u8>)>,
    },
    /// Answers each frame with the same bytes `think` later.
    Echo {
        think: Duration,
        owed: VecDeque<(Instant, Vec<u8>)>,
    },
    /// Claims a deadline long past forever, never sends; counts polls.
    Stale { polls: u64 },
    /// Sends a 1-byte frame every `every`.
    Ticker { next: Instant, every: Duration },
}

impl Host {
    fn client(script: impl IntoIterator<Item = (Instant, Vec<u8>)>) -> Host {
        Host::Client {
            script: script.into_iter().collect(),
            got: Vec::new(),
        }
    }
    fn echo(think: Duration) -> Host {
        Host::Echo {
            think,
            owed: VecDeque::new(),
        }
    }
    fn got(&self) -> &[(Instant, Vec<u8>)] {
        match self {
            Host::Client { got, .. } => got,
            _ => panic!("not a client"),
        }
    }
}

fn put(buf: &mut [u8], f: &[u8]) -> Option<usize> {
    buf[..f.len()].copy_from_slice(f);
    Some(f.len())
}

impl SimHost for Host {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        match self {
            Host::Client { got, .. } => got.push((now, frame.to_vec())),
            Host::Echo { think, owed } => owed.push_back((now + *think, frame.to_vec())),
            Host::Stale { .. } | Host::Ticker { .. } => {}
        }
    }
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        match self {
            Host::Client { script: q, .. } | Host::Echo { owed: q, .. } => {
                if q.front()?.0 > now {
                    return None;
                }
                let (_, f) = q.pop_front()?;
                put(buf, &f)
            }
            Host::Stale { polls } => {
                *polls += 1;
                None
            }
            Host::Ticker { next, every } => {
                if *next > now {
                    return None;
                }
                *next += *every;
                put(buf, &[7])
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        match self {
            Host::Client { script: q, .. } | Host::Echo { owed: q, .. } => q.front().map(|e| e.0),
            Host::Stale { .. } => Some(Instant::ZERO),
            Host::Ticker { next, .. } => Some(*next),
        }
    }
}

#[test]
fn echo_round_trip_has_expected_virtual_times() {
    // 125-byte frames take 1 ms at 1 Mbit/s; 10 ms each way; echo thinks 5 ms.
    let mut link = MemLink::new(1);
    link.set_impairments(
        Impairments::none()
            .with_delay(ms(10))
            .with_bandwidth(1_000_000),
    );
    let mut sim = Sim::new(link);
    let c = sim.add_host(Host::client([
        (at_ms(0), vec![1; 125]),
        (at_ms(0), vec![2; 125]),
    ]));
    sim.add_host(Host::echo(ms(5)));
    let done = sim.run_until(Instant::from_secs(1), |s| s.hosts[c].got().len() == 2);
    assert!(done);
    // Echo hears them at 11 and 12 ms, answers at 16 and 17; the answers
    // serialize 16-17 and 17-18 and land 10 ms later.
    let got = sim.hosts[c].got();
    assert_eq!(got[0], (at_ms(27), vec![1; 125]));
    assert_eq!(got[1], (at_ms(28), vec![2; 125]));
    assert_eq!(sim.now(), at_ms(28));
    assert_eq!(sim.link.stats().delivered, 4);
}

#[test]
fn zero_delay_exchange_completes_within_one_instant() {
    let mut sim = Sim::new(MemLink::new(1));
    let c = sim.add_host(Host::client([(at_ms(3), b"ping".to_vec())]));
    sim.add_host(Host::echo(Duration::ZERO));
    assert!(sim.run_until(at_ms(10), |s| !s.hosts[c].got().is_empty()));
    assert_eq!(sim.hosts[c].got(), [(at_ms(3), b"ping".to_vec())]);
    assert_eq!(sim.now(), at_ms(3));
}

#[test]
fn stale_deadline_does_not_stall_or_spin() {
    let mut sim = Sim::new(MemLink::new(1));
    let s = sim.add_host(Host::Stale { polls: 0 });
    assert!(!sim.step(Instant::MAX), "only a stale deadline: idle");
    assert_eq!(sim.now(), Instant::ZERO);
    let c = sim.add_host(Host::client([(at_ms(5), vec![9])]));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.now(), Instant::from_secs(1));
    assert!(sim.steps() < 10, "took {} steps", sim.steps());
    // The stale host was still polled each round and got the frame.
    let Host::Stale { polls } = sim.hosts[s] else {
        unreachable!()
    };
    assert_eq!(polls, sim.steps());
    assert!(sim.hosts[c].got().is_empty());
    assert_eq!(sim.link.stats().delivered, 1);
}

#[test]
fn timers_fire_on_time_and_deadline_is_inclusive() {
    let mut sim = Sim::new(MemLink::new(1));
    sim.add_host(Host::Ticker {
        next: Instant::ZERO,
        every: ms(100),
    });
    let c = sim.add_host(Host::client([]));
    sim.run_for(Duration::from_secs(1));
    let times: Vec<u64> = sim.hosts[c]
        .got()
        .iter()
        .map(|(t, _)| t.total_millis())
        .collect();
    assert_eq!(times, (0..=10).map(|i| i * 100).collect::<Vec<_>>());
    assert_eq!(sim.now(), Instant::from_secs(1));
    // Exactly one round per tick: the clock jumps from event to event.
    assert_eq!(sim.steps(), 11);
}

#[test]
fn run_until_reports_deadline_and_idle() {
    let mut sim = Sim::new(MemLink::new(1));
    sim.add_host(Host::Ticker {
        next: at_ms(50),
        every: ms(100),
    });
    assert!(!sim.run_until(at_ms(120), |_| false));
    assert_eq!(sim.now(), at_ms(120), "stopped at the deadline");

    let mut idle = Sim::new(MemLink::new(1));
    idle.add_host(Host::client([(at_ms(5), vec![1])]));
    idle.add_host(Host::client([]));
    assert!(!idle.run_until(Instant::from_secs(5), |_| false));
    assert_eq!(idle.now(), at_ms(5), "idle: clock left at the last event");
}

fn lossy_exchange(seed: u64) -> Vec<(Instant, Vec<u8>)> {
    let mut link = MemLink::new(seed);
    link.set_impairments(
        Impairments::lossy(0.2)
            .with_delay(ms(1))
            .with_jitter(ms(2))
            .with_duplicate(0.1),
    );
    let mut sim = Sim::new(link);
    let script = (0..500u32).map(|i| (at_ms(u64::from(i)), i.to_be_bytes().to_vec()));
    let c = sim.add_host(Host::client(script));
    sim.add_host(Host::echo(ms(1)));
    sim.run_for(Duration::from_secs(2));
    sim.hosts[c].got().to_vec()
}

#[test]
fn sim_runs_replay_by_seed() {
    let a = lossy_exchange(5);
    assert_eq!(a, lossy_exchange(5));
    assert_ne!(a, lossy_exchange(6));
    // Roughly 0.8^2 of 500 come back, plus duplicates.
    assert!((280..400).contains(&a.len()), "{}", a.len());
}

#[test]
fn boxed_hosts_of_different_kinds_share_a_sim() {
    struct Counter(Rc<RefCell<u32>>);
    impl SimHost for Counter {
        fn receive(&mut self, _: Instant, _: &[u8]) {
            *self.0.borrow_mut() += 1;
        }
        fn transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<usize> {
            None
        }
        fn poll_at(&self) -> Option<Instant> {
            None
        }
    }
    let n = Rc::new(RefCell::new(0));
    let mut sim: Sim<Box<dyn SimHost>> = Sim::new(MemLink::new(1));
    sim.add_host(Box::new(Host::Ticker {
        next: Instant::ZERO,
        every: ms(10),
    }));
    sim.add_host(Box::new(Counter(n.clone())));
    sim.add_host(Box::new(Counter(n.clone())));
    sim.run_for(ms(95));
    assert_eq!(*n.borrow(), 20, "hub: both counters hear all 10 ticks");
}
