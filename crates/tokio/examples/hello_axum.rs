//! axum on ustack: `GET /` answers `hello from ustack`; any other path is
//! a file under `--static-dir` (tower-http's ServeDir). Over a TUN whose
//! kernel side gets `--kernel-addr` (root or CAP_NET_ADMIN):
//!
//! ```sh
//! cargo build -p ustack-tokio --release --example hello_axum
//! sudo ./target/release/examples/hello_axum --tun ustk0 --addr 10.200.0.2/24 \
//!     --kernel-addr 10.200.0.1/24 --port 8080 --static-dir ./some-dir
//! curl http://10.200.0.2:8080/            # from another shell
//! ```

mod common;

use axum::routing::get;
use axum::Router;
use clap::Parser;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tower_http::services::ServeDir;

#[derive(Parser, Debug)]
#[command(about = "axum on ustack over a TUN device")]
struct Args {
    #[command(flatten)]
    link: common::Link,
    /// The port to listen on.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// The directory served under every path but `/`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    static_dir: PathBuf,
}

/// ustack's listener as axum's: connections with TCP_NODELAY (a response
/// whose head and body leave as two writes is not held by Nagle).
struct Listener(ustack_tokio::TcpListener);

impl axum::serve::Listener for Listener {
    type Io = ustack_tokio::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    return (s, peer);
                }
                // As axum's own listener: an accept error (out of
                // descriptors, say) is reported and accepting goes on.
                Err(e) => {
                    eprintln!("hello_axum: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.static_dir.is_dir() {
        eprintln!(
            "hello_axum: --static-dir {} is not a directory",
            args.static_dir.display()
        );
        return ExitCode::from(2);
    }
    let rt = match args.link.start() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hello_axum: {e}");
            return ExitCode::from(2);
        }
    };
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let addr = args.link.addr.address();
    let r: io::Result<()> = tokio_rt.block_on(async {
        let listener = ustack_tokio::TcpListener::bind(&rt, (addr, args.port)).await?;
        let app = Router::new()
            .route("/", get(|| async { "hello from ustack" }))
            .fallback_service(ServeDir::new(&args.static_dir));
        eprintln!("hello_axum: serving on http://{addr}:{}/", args.port);
        axum::serve(Listener(listener), app).await
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello_axum: {e}");
            ExitCode::from(2)
        }
    }
}
