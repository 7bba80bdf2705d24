//! `ustack connect HOST:PORT`: netcat on the stack (HOST an address or a name). Standard input goes to
//! the connection (a FIN when it ends), the connection to standard output;
//! it returns when the peer closes, once what standard input still had (if
//! it is not a terminal) has been sent and acknowledged.

use crate::get::{connect, describe};
use crate::interrupt::Progress;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::net::TcpStream;
use ustack::Runtime;

/// How long to wait at exit for the peer to acknowledge what we sent.
const DRAIN: Duration = Duration::from_secs(10);

/// `host` is resolved with `resolver` first when it is a name; `progress`
/// counts what goes each way, for a Ctrl-C summary.
pub fn run(
    rt: &Runtime,
    resolver: &ustack_dns::Resolver,
    host: &str,
    port: u16,
    progress: Arc<Progress>,
) -> Result<(), String> {
    let addr: SocketAddr = crate::resolve::socket_addr(rt, resolver, host, port)?;
    let s = Arc::new(connect(rt, addr)?);
    // Interactive: Nagle would hold a second small write (a typed line)
    // until the peer's delayed ACK.
    let _ = s.set_nodelay(true);
    let tx = s.clone();
    let sent = progress.clone();
    // Blocked on stdin when the peer closes: the process ends it by exiting.
    let sender = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if (&*tx).write_all(&buf[..n]).is_err() {
                            return;
                        }
                        sent.add_sent(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.shutdown(Shutdown::Write);
        })
        .map_err(|e| format!("cannot start the stdin thread: {e}"))?;
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => {
                // The peer may have closed only its sending side: a pipe's
                // remaining input still goes (the thread ends at its EOF, or
                // when the peer refuses more); a terminal's user is not waited for.
                if !io::stdin().is_terminal() {
                    let _ = sender.join();
                }
                drain(&s);
                return Ok(());
            }
            Ok(n) => match stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
                Ok(()) => progress.add_received(n),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(format!("cannot write to stdout: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{addr}: {}", describe(&e))),
        }
    }
}

/// Waits (bounded) until everything sent, FIN included, is acknowledged,
/// so exiting (which closes the device) loses nothing.
fn drain(s: &TcpStream) {
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline {
        match s.tcp_info() {
            Ok(i) if i.send_queue > 0 || i.unacked > 0 => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return,
        }
    }
}
