//! `ustack`: run servers and clients on the user-space stack and see what
//! it is doing.

mod connect;
mod demo;
mod forward;
mod get;
mod http;
mod interrupt;
mod link;
mod ping;
mod plot;
mod resolve;
mod serve;
mod stats;
mod transitions;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use ustack_core::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ustack",
    version,
    about = "A user-space TCP/IP stack: demos, servers and clients"
)]
struct Cli {
    /// At exit, on Ctrl-C and on SIGUSR1 print the counters (netstat -s
    /// style) and the TCP sockets (ss -tan style).
    #[arg(long, global = true)]
    stats: bool,
    /// Log more to stderr: -v info, -vv debug, -vvv trace (warnings are
    /// always shown). RUST_LOG, if set, takes precedence (e.g.
    /// RUST_LOG=ustack=debug,ustack_core=trace).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    link: link::LinkArgs,
    /// DNS server for host names (default: the kernel's address, --kernel-addr).
    #[arg(long, global = true, value_name = "IP")]
    dns: Option<std::net::Ipv4Addr>,
    /// A hosts(5) file whose names are answered before any DNS server.
    #[arg(long, global = true, value_name = "FILE", value_parser = resolve::hosts_file)]
    hosts: Option<ustack_dns::Hosts>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Two hosts on an in-memory link: ping, a UDP echo exchange and a TCP
    /// transfer over a lossy link, with state transitions and counters (no
    /// root needed). Takes --loss (default 0.05), --delay (default 10 ms),
    /// --seed (default 1) and --pcap from the link options.
    Demo {
        /// Probability that the link flips bits in a frame (0 to 1).
        #[arg(long, default_value_t = 0.01, value_parser = probability)]
        corrupt: f64,
        /// Pings and datagrams to send.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        /// Bytes per UDP datagram (over the 1500-byte MTU they are fragmented).
        #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(4..=65507))]
        size: u32,
        /// Bytes of the TCP transfer (0: none).
        #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(0..=1 << 34))]
        bytes: u64,
        /// Draw the TCP transfer's graphs into this directory (timeseq.svg,
        /// cwnd.svg, rtt.svg).
        #[arg(long, value_name = "DIR")]
        plot: Option<PathBuf>,
    },
    /// Draw a TCP connection from a trace (--trace) or a pcap/pcapng capture:
    /// time-sequence graph, cwnd, RTT.
    Plot {
        /// A trace written by --trace, or a capture of any TCP stack.
        input: PathBuf,
        /// The connection (its number in the trace; default: the one with the most data).
        #[arg(long, value_name = "N")]
        conn: Option<u64>,
        /// Which graph.
        #[arg(long, value_enum, default_value_t = plot::Graph::Timeseq)]
        graph: plot::Graph,
        /// The picture: .svg or .png.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Send ICMP echo requests from ustack (needs --tun or --tap).
    Ping {
        /// The address to ping (IPv4, or IPv6 with --addr6 or link-local).
        host: std::net::IpAddr,
        /// Stop after this many requests.
        #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
        /// Seconds between requests.
        #[arg(short = 'i', long, default_value_t = 1.0)]
        interval: f64,
        /// Bytes of data in each request.
        #[arg(short = 's', long, default_value_t = 56, value_parser = clap::value_parser!(u32).range(0..=65507))]
        size: u32,
    },
    /// Run a TCP server until SIGINT/SIGTERM (needs --tun or --tap).
    Serve {
        /// Stop after this many seconds instead.
        #[arg(long, global = true, value_name = "SECS", value_parser = seconds)]
        duration: Option<f64>,
        /// Connections open at once; past it a new one is closed at once.
        #[arg(long, global = true, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: u64,
        #[command(subcommand)]
        service: ServeCommand,
    },
    /// Fetch an http:// URL with HTTP/1.1 (needs --tun or --tap).
    Get {
        /// http://HOST[:PORT]/PATH, HOST an IPv4 address or a name (resolved via --dns).
        url: String,
        /// Write the body to this file instead of standard output.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Like netcat: standard input to a TCP connection, the connection to
    /// standard output (needs --tun or --tap).
    Connect {
        /// HOST:PORT, HOST an IPv4 address or a name (resolved via --dns).
        #[arg(value_name = "HOST:PORT", value_parser = host_port)]
        target: (String, u16),
    },
    /// Relay every TCP connection and UDP flow routed into the TUN to its
    /// original destination, directly or through a SOCKS5 proxy (needs --tun).
    Forward(forward::ForwardArgs),
    /// Look a name up (A records) with ustack's resolver, like host(1)
    /// (needs --tun or --tap; the server is --dns).
    Resolve {
        /// The host name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum ServeCommand {
    /// Static files over HTTP/1.1 (GET and HEAD).
    Http {
        /// The directory to serve (nothing outside it is reachable).
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// The TCP port to listen on.
        #[arg(long, default_value_t = 80, value_parser = port)]
        port: u16,
        /// Seconds a request head may take to arrive (from the connection's
        /// start or the previous response: idle keep-alive connections
        /// close after it too).
        #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = seconds)]
        header_timeout: f64,
    },
    /// RFC 862: sends back what it receives.
    Echo {
        /// The TCP port to listen on.
        #[arg(long, default_value_t = 7, value_parser = port)]
        port: u16,
    },
    /// RFC 863: reads and throws away.
    Discard {
        /// The TCP port to listen on.
        #[arg(long, default_value_t = 9, value_parser = port)]
        port: u16,
    },
    /// RFC 864: sends a rotating pattern of characters until the client leaves.
    Chargen {
        /// The TCP port to listen on.
        #[arg(long, default_value_t = 19, value_parser = port)]
        port: u16,
    },
}

fn port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{s}' is not a port number (1 to 65535)")),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && (0.0..=1e9).contains(&t) => Ok(t),
        _ => Err(format!("'{s}' is not a number of seconds")),
    }
}

fn host_port(s: &str) -> Result<(String, u16), String> {
    let usage = || {
        format!(
            "'{s}' is not HOST:PORT (an address, [v6] in brackets, or a name), e.g. 10.200.0.1:80"
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(usage)?;
    let port = self::port(port).map_err(|_| usage())?;
    resolve::check_host(host).map_err(|e| format!("{e}; {}", usage()))?;
    Ok((host.to_owned(), port))
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability between 0 and 1"))
    }
}

/// Writes to stdout; a closed pipe (`ustack demo | head`) is not an error.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ustack: cannot write to stdout: {e}");
            ExitCode::from(2)
        }
    }
}

/// The counters and the socket table, to stdout, or to stderr when stdout
/// carries data.
fn print_stats(rt: &ustack::Runtime, to_stderr: bool) {
    let text = stats::render(rt);
    if to_stderr {
        eprint!("{text}");
    } else {
        let _ = print_out(&text);
    }
}

/// Logs to stderr what RUST_LOG asks for, else warnings and, with each
/// `-v`, one level more.
fn init_logging(verbose: u8) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let spec = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec,
        _ => match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
        .to_string(),
    };
    let filter = EnvFilter::try_new(&spec).map_err(|e| {
        format!("RUST_LOG='{spec}' is not a log filter ({e}); write e.g. RUST_LOG=debug or RUST_LOG=ustack_core=trace")
    })?;
    // Ignored if a subscriber is already set (never, in this binary).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// A one-line error and exit status 2: a usage or setup error.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ustack: {msg}");
    ExitCode::from(2)
}

/// A one-line error and exit status 1: the command ran and its work failed
/// (refused, timed out, an HTTP error status), as with ping's lost replies.
fn failed(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ustack: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(e) = init_logging(cli.verbose) {
        return fail(e);
    }
    let stats = cli.stats;
    match cli.command {
        Command::Ping {
            host,
            count,
            interval,
            size,
        } => {
            if !(0.0..=3600.0).contains(&interval) {
                eprintln!("ustack: --interval {interval} is outside 0..3600 seconds");
                return ExitCode::from(2);
            }
            let signals = match interrupt::ClientSignals::install(
                interrupt::OnInterrupt::Flag,
                interrupt::Progress::new(),
                stats,
            ) {
                Ok(s) => s,
                Err(e) => return fail(format_args!("cannot catch signals: {e}")),
            };
            let rt = match cli.link.start("ping") {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ustack: {e}");
                    return ExitCode::from(2);
                }
            };
            signals.set_runtime(&rt);
            let r = ping::run(
                &rt,
                host,
                count,
                Duration::from_secs_f64(interval),
                size as usize,
                signals.interrupted(),
            );
            if stats {
                print_stats(&rt, false);
            }
            match r {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("ustack: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve {
            duration,
            max_connections,
            service,
        } => {
            let (port, service) = match service {
                ServeCommand::Http {
                    root,
                    port,
                    header_timeout,
                } => {
                    let root = match root.canonicalize() {
                        Ok(r) if r.is_dir() => r,
                        Ok(_) => {
                            return fail(format_args!(
                                "--root {} is not a directory; give the directory to serve",
                                root.display()
                            ))
                        }
                        Err(e) => {
                            let why = if e.kind() == std::io::ErrorKind::NotFound {
                                "no such directory".to_string()
                            } else {
                                e.to_string()
                            };
                            return fail(format_args!(
                                "--root {}: {why}; give an existing directory to serve",
                                root.display()
                            ));
                        }
                    };
                    let cfg = http::HttpConfig {
                        root,
                        header_timeout: std::time::Duration::from_secs_f64(
                            header_timeout.max(0.001),
                        ),
                    };
                    (port, serve::Service::Http(std::sync::Arc::new(cfg)))
                }
                ServeCommand::Echo { port } => (port, serve::Service::Echo),
                ServeCommand::Discard { port } => (port, serve::Service::Discard),
                ServeCommand::Chargen { port } => (port, serve::Service::Chargen),
            };
            let signals = match serve::Signals::install(duration.map(Duration::from_secs_f64)) {
                Ok(s) => s,
                Err(e) => return fail(format_args!("cannot catch signals: {e}")),
            };
            if cli.link.queues() > 1 {
                return match serve::run_group(
                    &cli.link,
                    port,
                    &service,
                    &signals,
                    stats,
                    usize::try_from(max_connections).unwrap_or(usize::MAX),
                ) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                };
            }
            let rt = match cli.link.start_with("serve", ustack::Mode::External) {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            // The stats are printed by the serve loop (at exit and on SIGUSR1).
            match serve::run(
                &rt,
                cli.link.addr().address(),
                cli.link.addr6.map(|a| a.address()),
                port,
                &service,
                &signals,
                stats,
                usize::try_from(max_connections).unwrap_or(usize::MAX),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Forward(args) => forward::run_command(&cli.link, args, stats),
        Command::Get { url, output } => {
            let url = match get::parse_url(&url, cli.link.kernel_addr().address()) {
                Ok(u) => u,
                Err(e) => return fail(e),
            };
            let progress = interrupt::Progress::new();
            let what = format!("http://{}{}", url.authority, url.path);
            let summary = move |p: &interrupt::Progress| {
                let got = p.received.load(std::sync::atomic::Ordering::Relaxed);
                format!(
                    "{what}: {got} bytes of the body received {}",
                    interrupt::rate(got, p)
                )
            };
            let signals = match interrupt::ClientSignals::install(
                interrupt::OnInterrupt::Exit(Box::new(summary)),
                progress.clone(),
                stats,
            ) {
                Ok(s) => s,
                Err(e) => return fail(format_args!("cannot catch signals: {e}")),
            };
            let rt = match cli.link.start("get") {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            signals.set_runtime(&rt);
            let dns = resolve::resolver(
                cli.dns.unwrap_or(cli.link.kernel_addr().address()),
                cli.hosts.clone(),
            );
            let r = get::run(&rt, &url, output.as_deref(), &dns, progress);
            if stats {
                print_stats(&rt, output.is_none());
            }
            match r {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => failed(e),
            }
        }
        Command::Connect { target } => {
            let addr = format!("{}:{}", target.0, target.1);
            let progress = interrupt::Progress::new();
            let summary = move |p: &interrupt::Progress| {
                let sent = p.sent.load(std::sync::atomic::Ordering::Relaxed);
                let got = p.received.load(std::sync::atomic::Ordering::Relaxed);
                format!(
                    "{addr}: {sent} bytes sent, {got} bytes received {}",
                    interrupt::rate(got, p)
                )
            };
            let signals = match interrupt::ClientSignals::install(
                interrupt::OnInterrupt::Exit(Box::new(summary)),
                progress.clone(),
                stats,
            ) {
                Ok(s) => s,
                Err(e) => return fail(format_args!("cannot catch signals: {e}")),
            };
            let rt = match cli.link.start("connect") {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            signals.set_runtime(&rt);
            let dns = resolve::resolver(
                cli.dns.unwrap_or(cli.link.kernel_addr().address()),
                cli.hosts.clone(),
            );
            let r = connect::run(&rt, &dns, &target.0, target.1, progress);
            if stats {
                print_stats(&rt, true);
            }
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => failed(e),
            }
        }
        Command::Resolve { name } => {
            if let Err(e) = resolve::check_host(&name) {
                return fail(e);
            }
            let rt = match cli.link.start("resolve") {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            let dns = resolve::resolver(
                cli.dns.unwrap_or(cli.link.kernel_addr().address()),
                cli.hosts.clone(),
            );
            let r = resolve::run(&rt, &dns, &name);
            if stats {
                print_stats(&rt, true);
            }
            match r {
                Ok(text) => print_out(&text),
                Err(e) => failed(e),
            }
        }
        Command::Plot {
            input,
            conn,
            graph,
            output,
        } => {
            if cli.link.trace.is_some() {
                return fail("plot draws a trace and writes none: give the trace as its input, without --trace");
            }
            match plot::run(&input, conn, graph, &output) {
                Ok(text) => print_out(&text),
                Err(e) => fail(e),
            }
        }
        Command::Demo {
            corrupt,
            count,
            size,
            bytes,
            plot,
        } => {
            let device_only = cli.link.device_options();
            if !device_only.is_empty() {
                return fail(format_args!(
                    "demo runs on the in-memory network and takes no {}; those are for ping, serve, get and connect on a TUN/TAP link",
                    device_only.join(", ")
                ));
            }
            let opts = demo::DemoOptions {
                loss: cli.link.loss.unwrap_or(0.05),
                delay: Duration::from_millis(cli.link.delay.unwrap_or(10)),
                corrupt,
                count,
                size: size as usize,
                seed: cli.link.seed.unwrap_or(1),
                pcap: cli.link.pcap.clone(),
                bytes,
                trace: cli.link.trace.clone(),
                plot,
                cc: cli.link.cc.unwrap_or_default(),
                ecn: cli.link.ecn_mode().unwrap_or_default(),
            };
            let queues = cli.link.queues();
            match demo::run(&opts).and_then(|mut r| {
                if queues > 1 {
                    r.text.push_str(&demo::multi_stack(queues)?);
                }
                Ok(r)
            }) {
                Ok(report) => print_out(&report.text),
                Err(e) => {
                    eprintln!("ustack: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
