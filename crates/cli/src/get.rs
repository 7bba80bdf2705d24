//! `ustack get URL [-o FILE]`: an HTTP/1.1 client on the stack.

use crate::interrupt::Progress;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::net::TcpStream;
use ustack::Runtime;

/// How long the handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a read may wait for the server.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// An `http://` URL; the host an IP literal (IPv6 in brackets) or a name
/// to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// As written, for the Host header.
    pub authority: String,
    pub path: String,
}

/// Parses `http://HOST[:PORT][/PATH]`, HOST an IPv4 address or a name;
/// `kernel` is the address a hint suggests (the kernel's, on the link).
pub fn parse_url(s: &str, kernel: Ipv4Addr) -> Result<Url, String> {
    let rest = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{s}: only http:// URLs are supported, not {scheme}://"
            ))
        }
        None => return Err(format!("{s}: not a URL; write http://ADDRESS[:PORT]/PATH")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    // RFC 3986 §3.2.2: an IPv6 literal in brackets, its colons not a port's.
    let port_sep = match authority.rfind(']') {
        Some(end) => authority[end..].find(':').map(|i| end + i),
        None => authority.rfind(':'),
    };
    let (host, port) = match port_sep.map(|i| (&authority[..i], &authority[i + 1..])) {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{s}: '{p}' is not a port number"))?,
        ),
        None => (authority, 80),
    };
    crate::resolve::check_host(host).map_err(|e| {
        format!(
            "{s}: {e}; give an IP address ([v6] in brackets) or a host name, e.g. http://{kernel}/"
        )
    })?;
    Ok(Url {
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path,
    })
}

/// A few words for a connection error, with what the user can do.
pub fn describe(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused (nothing listens on that port)".into(),
        TimedOut | WouldBlock => "timed out (is the address right and the peer up?)".into(),
        ConnectionReset => "connection reset by peer".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable (is the address on the link's subnet?)".into(),
        _ => e.to_string(),
    }
}

/// After this long without an answer, a connect says it is still trying.
const CONNECT_NOTICE: Duration = Duration::from_secs(1);

/// Connects with a time limit; the error is one readable line. A connect
/// with no answer after a second says so on stderr, once.
pub fn connect(rt: &Runtime, addr: SocketAddr) -> Result<TcpStream, String> {
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let notice = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            waiting.recv_timeout(CONNECT_NOTICE)
        {
            eprintln!(
                "ustack: connecting to {addr}: no answer yet; trying for {} s (Ctrl-C stops)",
                CONNECT_TIMEOUT.as_secs()
            );
        }
    });
    let r = TcpStream::connect_timeout(rt, &addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot connect to {addr}: {}", describe(&e)));
    drop(done);
    let _ = notice.join();
    r
}

/// Buffered reading from the connection.
struct Conn<'a> {
    s: &'a TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn<'_> {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more; Ok(0) at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        loop {
            let mut r = self.s;
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// One CRLF-terminated line (without it).
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buffered()[..i]).into_owned();
                self.consume(i + 2);
                return Ok(l);
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Copies up to `limit` bytes (None: to EOF) to `out`; returns how many.
    fn copy(&mut self, limit: Option<u64>, out: &mut Sink) -> io::Result<u64> {
        let mut done = 0u64;
        loop {
            let want = limit.map_or(usize::MAX, |l| {
                usize::try_from(l - done).unwrap_or(usize::MAX)
            });
            if want == 0 {
                return Ok(done);
            }
            if self.buffered().is_empty() && self.fill()? == 0 {
                return Ok(done);
            }
            let n = self.buffered().len().min(want);
            out.write(&self.buf[self.start..self.start + n])?;
            self.consume(n);
            done += n as u64;
        }
    }
}

/// Where the body goes, with a progress bar on a terminal's stderr.
struct Sink {
    out: Box<dyn Write>,
    total: Option<u64>,
    done: u64,
    bar: bool,
    started: Instant,
    drawn: Instant,
    /// What a Ctrl-C summary reports.
    progress: Arc<Progress>,
}

impl Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.done += b.len() as u64;
        self.progress.add_received(b.len());
        if self.bar && self.drawn.elapsed() >= Duration::from_millis(100) {
            self.draw();
        }
        Ok(())
    }

    fn draw(&mut self) {
        self.drawn = Instant::now();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let rate = mib(self.done) / self.started.elapsed().as_secs_f64().max(1e-3);
        let line = match self.total {
            Some(t) if t > 0 => {
                let frac = self.done as f64 / t as f64;
                let filled = (frac * 30.0) as usize;
                format!(
                    "\r[{}{}] {:5.1}% {:.1}/{:.1} MiB {rate:.1} MiB/s ",
                    "#".repeat(filled.min(30)),
                    " ".repeat(30 - filled.min(30)),
                    frac * 100.0,
                    mib(self.done),
                    mib(t)
                )
            }
            _ => format!("\r{:.1} MiB {rate:.1} MiB/s ", mib(self.done)),
        };
        let _ = io::stderr().write_all(line.as_bytes());
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.bar {
            self.draw();
            let _ = io::stderr().write_all(b"\n");
        }
        self.out.flush()
    }
}

/// Fetches `url` into `out` (None: stdout); returns the body's length.
/// The host is resolved with `resolver` first when it is a name;
/// `progress` counts the body's bytes as they are written out.
pub fn run(
    rt: &Runtime,
    url: &Url,
    out: Option<&Path>,
    resolver: &ustack_dns::Resolver,
    progress: Arc<Progress>,
) -> Result<u64, String> {
    let addr = crate::resolve::socket_addr(rt, resolver, &url.host, url.port)?;
    let s = connect(rt, addr)?;
    let _ = s.set_read_timeout(Some(READ_TIMEOUT));
    let what = format!("http://{}{}", url.authority, url.path);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ustack/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION")
    );
    // The whole request in one write (it has no body), so Nagle has no
    // second small write to hold back for the server's delayed ACK.
    (&s).write_all(req.as_bytes())
        .map_err(|e| format!("{what}: sending the request: {}", describe(&e)))?;
    let mut conn = Conn {
        s: &s,
        buf: vec![0u8; MAX_HEAD],
        start: 0,
        end: 0,
    };
    let io_err = |e: io::Error| format!("{what}: {}", describe(&e));
    // The head (skipping any 1xx interim responses).
    let (status, reason, length, chunked) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(conn.buffered()) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap_or(0);
                let mut length = None;
                let mut chunked = false;
                for h in resp.headers.iter() {
                    let v = String::from_utf8_lossy(h.value);
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = Some(v.trim().parse::<u64>().map_err(|_| {
                            format!("{what}: bad Content-Length '{v}' in the response")
                        })?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = v.to_ascii_lowercase().contains("chunked");
                    }
                }
                let reason = resp.reason.unwrap_or("").to_owned();
                conn.consume(n);
                if (100..200).contains(&status) {
                    continue;
                }
                break (status, reason, length, chunked);
            }
            Ok(httparse::Status::Partial) => match conn.fill() {
                Ok(0) => {
                    return Err(format!(
                        "{what}: the server closed the connection without a response"
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(io_err(e)),
            },
            Err(e) => return Err(format!("{what}: malformed response: {e}")),
        }
    };
    if !(200..300).contains(&status) {
        return Err(format!("{what}: the server answered {status} {reason}"));
    }
    let writer: Box<dyn Write> = match out {
        Some(p) => Box::new(io::BufWriter::with_capacity(
            256 * 1024,
            File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::with_capacity(
            256 * 1024,
            io::stdout().lock(),
        )),
    };
    let mut sink = Sink {
        out: writer,
        total: if chunked { None } else { length },
        done: 0,
        bar: io::stderr().is_terminal(),
        started: Instant::now(),
        drawn: Instant::now(),
        progress,
    };
    let body = if chunked {
        copy_chunked(&mut conn, &mut sink)
    } else {
        conn.copy(length, &mut sink)
    };
    let got = match body {
        Ok(n) => n,
        // `ustack get URL | head`: the reader had enough.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && out.is_none() => return Ok(sink.done),
        Err(e) => return Err(io_err(e)),
    };
    if let Some(want) = length.filter(|_| !chunked) {
        if got < want {
            return Err(format!(
                "{what}: the connection closed after {got} of {want} bytes"
            ));
        }
    }
    match sink.finish() {
        Ok(()) => Ok(got),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && out.is_none() => Ok(got),
        Err(e) => Err(format!("{what}: writing the body: {e}")),
    }
}

/// A chunked body (RFC 9112 §7.1): size lines, data, trailers.
fn copy_chunked(conn: &mut Conn<'_>, sink: &mut Sink) -> io::Result<u64> {
    let bad =
        |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunked body: {m}"));
    let mut total = 0;
    loop {
        let line = conn.line()?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !conn.line()?.is_empty() {}
            return Ok(total);
        }
        let n = conn.copy(Some(size), sink)?;
        if n < size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        total += n;
        if !conn.line()?.is_empty() {
            return Err(bad("no CRLF after a chunk"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let parse_url = |s| parse_url(s, Ipv4Addr::new(10, 9, 8, 1));
        let u = parse_url("http://10.1.2.3:8080/a/b?c=d#frag").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("10.1.2.3", 8080));
        assert_eq!(u.path, "/a/b?c=d");
        assert_eq!(u.authority, "10.1.2.3:8080");
        let u = parse_url("HTTP://10.1.2.3").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(parse_url("https://10.1.2.3/")
            .unwrap_err()
            .contains("only http://"));
        let u = parse_url("http://www.example.com:81/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("www.example.com", 81));
        let bad = parse_url("http://bad..name/").unwrap_err();
        assert!(
            bad.contains("not a valid host name") && bad.ends_with("e.g. http://10.9.8.1/"),
            "{bad}"
        );
        assert!(parse_url("http://10.1.2.3:0/").is_err());
        let u = parse_url("http://[fd00::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[fd00::1]", 8080));
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("[fd00::1]:8080", "/x")
        );
        let u = parse_url("http://[fd00::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[fd00::1]", 80));
        assert!(parse_url("http://[fd00::zz]/").is_err());
        assert!(parse_url("10.1.2.3/").unwrap_err().contains("not a URL"));
    }
}
