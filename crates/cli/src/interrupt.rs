//! Signals for the clients (`ping`, `get`, `connect`): Ctrl-C (SIGINT) or
//! SIGTERM ends one with its summary and `--stats`, as ping(8) prints its
//! statistics; SIGUSR1 prints `--stats` and the client carries on (its
//! default action would kill the process).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use ustack::Runtime;

/// Exit status after SIGINT: 128 + the signal's number, as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// What a client has done so far, for the summary an interruption prints.
#[derive(Debug)]
pub struct Progress {
    pub started: Instant,
    /// Bytes sent to the peer (written into the connection).
    pub sent: AtomicU64,
    /// Bytes received from the peer and written out.
    pub received: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            started: Instant::now(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        })
    }

    pub fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What an interruption does.
pub enum OnInterrupt {
    /// Set the flag; the client (ping) notices it, prints and returns.
    Flag,
    /// Print this summary of the progress (to stderr), then `--stats`, and
    /// exit with [`EXIT_INTERRUPTED`]: the client is blocked in a read or
    /// a connect and has nothing left to do.
    Exit(Box<dyn Fn(&Progress) -> String + Send>),
}

/// The handlers of one client.
pub struct ClientSignals {
    interrupted: Arc<AtomicBool>,
    rt: Arc<Mutex<Option<Runtime>>>,
}

impl ClientSignals {
    /// Catches SIGINT, SIGTERM and SIGUSR1 on a thread of their own.
    pub fn install(
        what: OnInterrupt,
        progress: Arc<Progress>,
        stats: bool,
    ) -> io::Result<ClientSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])?;
        let interrupted = Arc::new(AtomicBool::new(false));
        let rt: Arc<Mutex<Option<Runtime>>> = Arc::new(Mutex::new(None));
        let (flag, runtime) = (interrupted.clone(), rt.clone());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let rt = runtime.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if sig == SIGUSR1 {
                        if let (true, Some(rt)) = (stats, &rt) {
                            eprint!("{}", crate::stats::render(rt));
                        }
                        continue;
                    }
                    if flag.swap(true, Ordering::SeqCst) {
                        // A second Ctrl-C: no more waiting.
                        std::process::exit(i32::from(EXIT_INTERRUPTED));
                    }
                    if let OnInterrupt::Exit(summary) = &what {
                        let mut err = io::stderr().lock();
                        let _ = writeln!(err, "\nustack: interrupted: {}", summary(&progress));
                        if let (true, Some(rt)) = (stats, &rt) {
                            let _ = err.write_all(crate::stats::render(rt).as_bytes());
                        }
                        let _ = err.flush();
                        std::process::exit(i32::from(EXIT_INTERRUPTED));
                    }
                }
            })?;
        Ok(ClientSignals { interrupted, rt })
    }

    /// The runtime whose counters `--stats` prints, once there is one.
    pub fn set_runtime(&self, rt: &Runtime) {
        *self.rt.lock().unwrap_or_else(|e| e.into_inner()) = Some(rt.clone());
    }

    /// The flag SIGINT/SIGTERM set.
    pub fn interrupted(&self) -> &AtomicBool {
        &self.interrupted
    }
}

/// "in T s (R MiB/s)": the time since `p.started`, and `n` bytes' rate over it.
pub fn rate(n: u64, p: &Progress) -> String {
    let secs = p.started.elapsed().as_secs_f64().max(1e-3);
    format!(
        "in {secs:.2} s ({:.2} MiB/s)",
        n as f64 / (1024.0 * 1024.0) / secs
    )
}
