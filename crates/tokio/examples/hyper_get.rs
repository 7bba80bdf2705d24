//! hyper's HTTP/1.1 client on ustack: fetches a URL from a kernel server
//! over a TUN and writes the body to stdout (or `-o FILE`); the status
//! line goes to stderr. Exit status 0 for a 2xx answer, 1 for another,
//! 2 for an error.
//!
//! ```sh
//! python3 -m http.server 8000 --bind 0.0.0.0 &
//! sudo ./target/release/examples/hyper_get --tun ustk0 --addr 10.200.0.2/24 \
//!     --kernel-addr 10.200.0.1/24 http://10.200.0.1:8000/
//! ```

mod common;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "hyper's client on ustack over a TUN device")]
struct Args {
    #[command(flatten)]
    link: common::Link,
    /// http://ADDRESS[:PORT]/PATH, the address an IPv4 literal.
    url: hyper::Uri,
    /// Write the body here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn fetch(rt: &ustack::Runtime, url: &hyper::Uri, out: &mut dyn Write) -> Result<bool, Error> {
    if url.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs").into());
    }
    let host: Ipv4Addr = url
        .host()
        .unwrap_or("")
        .parse()
        .map_err(|_| format!("{url}: the host must be an IPv4 address (ustack has no DNS)"))?;
    let port = url.port_u16().unwrap_or(80);
    let stream = ustack_tokio::TcpStream::connect(rt, (host, port)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let authority = url.authority().map_or(String::new(), |a| a.to_string());
    let req = hyper::Request::get(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())?;
    let mut res = sender.send_request(req).await?;
    eprintln!("hyper_get: {:?} {}", res.version(), res.status());
    while let Some(frame) = res.frame().await {
        if let Some(data) = frame?.data_ref() {
            out.write_all(data)?;
        }
    }
    out.flush()?;
    drop(sender);
    let _ = conn.await;
    Ok(res.status().is_success())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match args.link.start() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hyper_get: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("hyper_get: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match tokio_rt.block_on(fetch(&rt, &args.url, &mut *out)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hyper_get: {e}");
            ExitCode::from(2)
        }
    }
}
