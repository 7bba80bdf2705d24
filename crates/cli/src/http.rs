//! `ustack serve http`: a static file server on hyper over ustack-tokio.
//! GET and HEAD, keep-alive and pipelining (hyper's), Range (RFC 9110
//! §14) and If-Modified-Since (RFC 9110 §13.1.3), nothing served from
//! outside the root.
//!
//! Against the Nagle/delayed-ACK stall (RFC 896 holding a response's
//! second write until the client's delayed ACK, 40 ms on Linux): every
//! connection is TCP_NODELAY, and a small response leaves as one write
//! (hyper flattens head and a whole body into one buffer), so it is one
//! segment. Against slow and idle clients: a request head must arrive
//! whole within the header timeout (counted from the connection's start
//! or the previous response, so it also ends idle keep-alive
//! connections), a head over 16 KiB gets 431, a malformed one 400 and
//! the connection closes (hyper). A client that stops reading holds at
//! most the socket's send buffer and one file chunk.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use ustack_tokio::TcpStream;

/// Longest request head accepted (hyper's read buffer limit): longer
/// gets 431 Request Header Fields Too Large (RFC 6585 §5).
pub const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from a file per body frame; files up to this size are sent
/// with their head in one write.
const CHUNK: usize = 64 * 1024;

/// How the server treats its clients.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The directory served (canonical).
    pub root: PathBuf,
    /// How long a request head may take to arrive.
    pub header_timeout: Duration,
}

type RespBody = BoxBody<Bytes, io::Error>;

fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> RespBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Serves requests on one connection until it closes, errs or times out.
pub async fn serve(s: TcpStream, cfg: Arc<HttpConfig>) {
    let _ = s.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(s);
    let header_timeout = cfg.header_timeout;
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let cfg = cfg.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(&cfg, &req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD)
        .title_case_headers(true)
        .serve_connection(io, svc);
    let _ = conn.await;
}

fn error(status: StatusCode, send_body: bool, close: bool) -> Response<RespBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let len = text.len();
    let mut r = Response::new(if send_body { full(text) } else { empty() });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// A `Range` header's one range, resolved against a length (RFC 9110 §14.1.2).
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// Serve the whole representation (no Range, several ranges, or a
    /// unit other than bytes: a server may ignore Range, RFC 9110 §14.2).
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

fn byte_range(value: &str, len: u64) -> ByteRange {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(n) if len > 0 => ByteRange::Part(len.saturating_sub(n), len - 1),
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        // bytes=A-: from A to the end.
        (false, true) => match num(a) {
            Some(a) if a < len => ByteRange::Part(a, len - 1),
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b && a < len => ByteRange::Part(a, b.min(len - 1)),
            (Some(a), Some(b)) if a <= b => ByteRange::Unsatisfiable,
            _ => ByteRange::Whole,
        },
        (true, true) => ByteRange::Whole,
    }
}

/// A file's bytes `left` from where it is, a chunk per frame (read
/// when hyper asks for the next, so a slow reader holds one chunk).
struct FileBody {
    file: File,
    left: u64,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut buf = vec![0u8; want];
        let r = match self.file.read(&mut buf) {
            // The file shrank under us: the length promised cannot be kept.
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
            Ok(n) => {
                buf.truncate(n);
                self.left -= n as u64;
                Ok(Frame::data(Bytes::from(buf)))
            }
            Err(e) => Err(e),
        };
        Poll::Ready(Some(r))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

/// The body for `len` bytes of `file` from `start`: read now when small
/// (so head and body go out as one write), else streamed.
fn file_body(mut file: File, start: u64, len: u64) -> io::Result<RespBody> {
    if start > 0 {
        file.seek(SeekFrom::Start(start))?;
    }
    if len <= CHUNK as u64 {
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf)?;
        return Ok(full(buf));
    }
    Ok(FileBody { file, left: len }.boxed())
}

/// Answers one request.
fn respond<B>(cfg: &HttpConfig, req: &Request<B>) -> Response<RespBody> {
    let is_head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !is_head {
        return error(StatusCode::METHOD_NOT_ALLOWED, true, false);
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = match resolve(&cfg.root, target) {
        Ok(p) => p,
        Err(NoFile::BadRequest) => return error(StatusCode::BAD_REQUEST, !is_head, true),
        Err(NoFile::NotFound) => return error(StatusCode::NOT_FOUND, !is_head, false),
        Err(NoFile::Forbidden) => return error(StatusCode::FORBIDDEN, !is_head, false),
    };
    let opened = File::open(&path).and_then(|f| f.metadata().map(|m| (f, m)));
    let (file, meta) = match opened {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return error(StatusCode::FORBIDDEN, !is_head, false)
        }
        Err(_) => return error(StatusCode::NOT_FOUND, !is_head, false),
    };
    let len = meta.len();
    // HTTP dates have whole seconds.
    let modified = meta.modified().ok().map(|t| {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    });
    let hdr = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // RFC 9110 §13.1.3: If-Modified-Since is ignored with If-None-Match.
    if let (Some(m), Some(since), None) = (
        modified,
        hdr(header::IF_MODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(&v).ok()),
        hdr(header::IF_NONE_MATCH),
    ) {
        if m <= since {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut().insert(
                header::LAST_MODIFIED,
                HeaderValue::from_str(&httpdate::fmt_http_date(m)).expect("an HTTP date"),
            );
            return r;
        }
    }
    let last_modified = modified.map(httpdate::fmt_http_date);
    // RFC 9110 §13.1.5: a Range with an If-Range that does not match is ignored.
    let if_range_ok = match hdr(header::IF_RANGE) {
        None => true,
        Some(v) => last_modified.as_deref() == Some(v.trim()),
    };
    let range = match hdr(header::RANGE) {
        Some(v) if if_range_ok => byte_range(&v, len),
        _ => ByteRange::Whole,
    };
    let (status, start, count) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, len),
        ByteRange::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        ByteRange::Unsatisfiable => {
            let mut r = error(StatusCode::RANGE_NOT_SATISFIABLE, !is_head, false);
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("a header value"),
            );
            return r;
        }
    };
    let body = if is_head {
        empty()
    } else {
        match file_body(file, start, count) {
            Ok(b) => b,
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, true, true),
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("ustack"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(lm) = last_modified {
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&lm).expect("an HTTP date"),
        );
    }
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {}-{}/{len}", start, start + count - 1))
                .expect("a header value"),
        );
    }
    r
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
    let (real, meta) = under_root(root, file)?;
    if meta.is_dir() {
        let (index, m) = under_root(root, real.join("index.html"))?;
        return if m.is_file() {
            Ok(index)
        } else {
            Err(NoFile::NotFound)
        };
    }
    if meta.is_file() {
        Ok(real)
    } else {
        Err(NoFile::NotFound)
    }
}

fn no_file(e: io::Error) -> NoFile {
    match e.kind() {
        io::ErrorKind::PermissionDenied => NoFile::Forbidden,
        _ => NoFile::NotFound,
    }
}

/// `path` (the root and normal components only) and its metadata, if it
/// stays under `root`. Each component under the root is looked at without
/// following it (one lstat each): with no symlink on the way the path is
/// under the root as written; a symlink is resolved (canonicalize) and
/// the result must still be under the root. Cheaper than canonicalizing
/// every path, which reads every component of the root too.
fn under_root(root: &Path, path: PathBuf) -> Result<(PathBuf, std::fs::Metadata), NoFile> {
    let rel = path.strip_prefix(root).map_err(|_| NoFile::NotFound)?;
    let mut walk = root.to_path_buf();
    let mut last = None;
    for c in rel.components() {
        walk.push(c);
        let m = walk.symlink_metadata().map_err(no_file)?;
        if m.file_type().is_symlink() {
            let real = path.canonicalize().map_err(no_file)?;
            if !real.starts_with(root) {
                return Err(NoFile::NotFound);
            }
            let m = real.metadata().map_err(no_file)?;
            return Ok((real, m));
        }
        last = Some(m);
    }
    let m = match last {
        Some(m) => m,
        None => root.metadata().map_err(no_file)?,
    };
    Ok((path, m))
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
        let _ = std::os::unix::fs::symlink(root.join("a.txt"), root.join("inside"));
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("sub2"));
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
        assert_eq!(resolve(&root, "/inside"), Ok(root.join("a.txt")));
        assert_eq!(resolve(&root, "/sub2/"), Err(NoFile::NotFound));
        assert_eq!(resolve(&root, "/a.txt/x"), Err(NoFile::NotFound));
        assert_eq!(resolve(&root, "a.txt"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/%zz"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/a%00"), Err(NoFile::BadRequest));
        assert_eq!(resolve(&root, "/nope"), Err(NoFile::NotFound));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn ranges_resolve_as_rfc_9110_says() {
        use ByteRange::*;
        assert_eq!(byte_range("bytes=0-4", 10), Part(0, 4));
        assert_eq!(byte_range("bytes=2-", 10), Part(2, 9));
        assert_eq!(byte_range("bytes=-3", 10), Part(7, 9));
        assert_eq!(byte_range("bytes=-30", 10), Part(0, 9));
        assert_eq!(byte_range("bytes=5-100", 10), Part(5, 9));
        assert_eq!(byte_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(byte_range("bytes=10-12", 10), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,4-5", 10), Whole);
        assert_eq!(byte_range("bytes=5-2", 10), Whole);
        assert_eq!(byte_range("items=0-1", 10), Whole);
        assert_eq!(byte_range("bytes=x-1", 10), Whole);
    }
}
