//! `ustack connect HOST:PORT`: netcat on the stack. Standard input goes to
//! the connection (a FIN when it ends), the connection to standard output;
//! it returns when the peer closes.

use crate::get::{connect, describe};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::sync::Arc;
use ustack::Runtime;

pub fn run(rt: &Runtime, addr: SocketAddrV4) -> Result<(), String> {
    let s = Arc::new(connect(rt, addr)?);
    let tx = s.clone();
    // Blocked on stdin when the peer closes: the process ends it by exiting.
    std::thread::Builder::new()
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
            Ok(0) => return Ok(()),
            Ok(n) => match stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(format!("cannot write to stdout: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{addr}: {}", describe(&e))),
        }
    }
}
