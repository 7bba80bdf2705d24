//! `ustack serve http`: a static file server. GET and HEAD, Content-Length,
//! keep-alive (and pipelining), files streamed in chunks, nothing served
//! from outside the root.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use ustack::net::TcpStream;

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from a file and written per step.
const CHUNK: usize = 64 * 1024;
/// How long a kept-alive connection may sit idle.
const IDLE: Duration = Duration::from_secs(60);

/// What the server needs from a parsed request.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    body_len: u64,
    chunked: bool,
}

/// Parses one request head from `buf`: `Ok(None)` if more bytes are
/// needed, else the request and the head's length.
fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let http10 = req.version == Some(0);
    let mut connection = String::new();
    let mut body_len = 0;
    let mut chunked = false;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| ())?.trim();
        if h.name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body_len = value.parse().map_err(|_| ())?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    let keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    Ok(Some((
        Request {
            method: req.method.unwrap_or("").to_owned(),
            target: req.path.unwrap_or("").to_owned(),
            keep_alive,
            body_len,
            chunked,
        },
        n,
    )))
}

/// Decodes %XX escapes; None if one is malformed.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Why a target maps to no file.
#[derive(Debug, PartialEq, Eq)]
enum NoFile {
    BadRequest,
    NotFound,
    Forbidden,
}

/// The file a request target names under `root` (canonical). Rejects `..`,
/// and anything (a symlink, say) that resolves outside the root.
fn resolve(root: &Path, target: &str) -> Result<PathBuf, NoFile> {
    // The absolute form (RFC 9112 §3.2.2), as proxies send it: drop the
    // scheme and authority.
    let target = match target.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => {
            target[7..].find('/').map_or("/", |i| &target[7 + i..])
        }
        _ => target,
    };
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(NoFile::BadRequest);
    }
    let decoded = percent_decode(path).ok_or(NoFile::BadRequest)?;
    let decoded = String::from_utf8(decoded).map_err(|_| NoFile::BadRequest)?;
    if decoded.contains('\0') {
        return Err(NoFile::BadRequest);
    }
    let mut file = root.to_path_buf();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(NoFile::BadRequest),
            p => {
                // One normal component each, nothing that could climb or jump.
                let mut c = Path::new(p).components();
                match (c.next(), c.next()) {
                    (Some(Component::Normal(_)), None) => file.push(p),
                    _ => return Err(NoFile::BadRequest),
                }
            }
        }
    }
    let real = file.canonicalize().map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => NoFile::Forbidden,
        _ => NoFile::NotFound,
    })?;
    if !real.starts_with(root) {
        return Err(NoFile::NotFound);
    }
    if real.is_dir() {
        let index = real.join("index.html");
        return if index.is_file() {
            Ok(index)
        } else {
            Err(NoFile::NotFound)
        };
    }
    if real.is_file() {
        Ok(real)
    } else {
        Err(NoFile::NotFound)
    }
}

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" | "rs" | "toml" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

fn head(status: u16, len: u64, ctype: &str, keep_alive: bool, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nServer: ustack\r\nContent-Length: {len}\r\nContent-Type: {ctype}\r\nConnection: {}\r\n{extra}\r\n",
        reason(status),
        if keep_alive { "keep-alive" } else { "close" }
    )
}

/// An error page; returns whether the connection may go on.
fn error(s: &TcpStream, status: u16, send_body: bool, keep_alive: bool) -> bool {
    let body = format!("{status} {}\n", reason(status));
    let extra = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut msg = head(
        status,
        body.len() as u64,
        "text/plain; charset=utf-8",
        keep_alive,
        extra,
    );
    if send_body {
        msg.push_str(&body);
    }
    s.write_all_ok(msg.as_bytes()) && keep_alive
}

trait WriteAllOk {
    fn write_all_ok(&self, b: &[u8]) -> bool;
}

impl WriteAllOk for TcpStream {
    fn write_all_ok(&self, b: &[u8]) -> bool {
        let mut w = self;
        w.write_all(b).is_ok()
    }
}

/// Answers one request; returns whether the connection may go on.
fn respond(s: &TcpStream, root: &Path, req: &Request) -> bool {
    let is_head = req.method == "HEAD";
    if req.method != "GET" && !is_head {
        return error(s, 405, true, req.keep_alive);
    }
    let path = match resolve(root, &req.target) {
        Ok(p) => p,
        Err(NoFile::BadRequest) => return error(s, 400, !is_head, false),
        Err(NoFile::NotFound) => return error(s, 404, !is_head, req.keep_alive),
        Err(NoFile::Forbidden) => return error(s, 403, !is_head, req.keep_alive),
    };
    let opened = File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len())));
    let (mut file, len) = match opened {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return error(s, 403, !is_head, req.keep_alive)
        }
        Err(_) => return error(s, 404, !is_head, req.keep_alive),
    };
    if !s.write_all_ok(head(200, len, content_type(&path), req.keep_alive, "").as_bytes()) {
        return false;
    }
    if is_head {
        return req.keep_alive;
    }
    // Streamed: a file of any size costs one chunk of memory.
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        match file.read(&mut buf[..want]) {
            // The file shrank under us: the length promised cannot be kept.
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                if !s.write_all_ok(&buf[..n]) {
                    return false;
                }
                left -= n as u64;
            }
        }
    }
    req.keep_alive
}

/// Serves requests on one connection until it closes or errs.
pub fn serve(s: TcpStream, root: &Path) {
    let _ = s.set_read_timeout(Some(IDLE));
    let mut buf = vec![0u8; MAX_HEAD];
    let mut have = 0;
    loop {
        let (req, used) = match parse(&buf[..have]) {
            Ok(Some(x)) => x,
            Err(()) => {
                error(&s, 400, true, false);
                break;
            }
            Ok(None) => {
                if have == buf.len() {
                    error(&s, 431, true, false);
                    break;
                }
                match (&s).read(&mut buf[have..]) {
                    Ok(0) => break,
                    Ok(n) => have += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
                continue;
            }
        };
        buf.copy_within(used..have, 0);
        have -= used;
        if req.chunked {
            // A GET or HEAD has no business with a chunked body.
            error(&s, 400, true, false);
            break;
        }
        // Skip any body (GET and HEAD take none).
        let mut skip = req.body_len;
        let from_buf = usize::try_from(skip).unwrap_or(usize::MAX).min(have);
        buf.copy_within(from_buf..have, 0);
        have -= from_buf;
        skip -= from_buf as u64;
        while skip > 0 {
            let want = usize::try_from(skip).unwrap_or(MAX_HEAD).min(MAX_HEAD);
            match (&s).read(&mut buf[..want]) {
                Ok(0) | Err(_) => return,
                Ok(n) => skip -= n as u64,
            }
        }
        if !respond(&s, root, &req) {
            break;
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ustack-http-unit-{}", std::process::id()));
        let root = dir.join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/index.html"), "i").unwrap();
        std::fs::write(dir.join("secret"), "s").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("escape"));
        (dir, root.canonicalize().unwrap())
    }

    #[test]
    fn paths_stay_under_the_root() {
        let (dir, root) = root();
        assert_eq!(resolve(&root, "/a.txt"), Ok(root.join("a.txt")));
        assert_eq!(resolve(&root, "http://h:80/a.txt"), Ok(root.join("a.txt")));
        assert_eq!(resolve(&root, "HTTP://h"), Err(NoFile::NotFound));
        assert_eq!(
            resolve(&root, "http://h/../secret"),
            Err(NoFile::BadRequest)
        );
        assert_eq!(resolve(&root, "/%61.txt?x=1"), Ok(root.join("a.txt")));
        assert_eq!(resolve(&root, "/sub/"), Ok(root.join("sub/index.html")));
        assert_eq!(resolve(&root, "/"), Err(NoFile::NotFound));
        assert_eq!(resolve(&root, "/../secret"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/%2e%2e/secret"), Err(NoFile::BadRequest));
        assert_eq!(
            resolve(&root, "/sub/..%2f..%2fsecret"),
            Err(NoFile::BadRequest)
        );
        assert_eq!(resolve(&root, "/escape"), Err(NoFile::NotFound));
        assert_eq!(resolve(&root, "a.txt"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/%zz"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/a%00"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/nope"), Err(NoFile::NotFound));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn requests_parse_with_keep_alive_rules() {
        let (r, n) = parse(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!((r.method.as_str(), r.target.as_str(), n), ("GET", "/x", 28));
        assert!(r.keep_alive);
        let (r, _) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
        let (r, _) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
        assert!(parse(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
        assert!(parse(b"\x01\x02 nonsense\r\n\r\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
    }
}
