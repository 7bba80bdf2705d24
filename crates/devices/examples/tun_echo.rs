//! ustack on a TUN device, answering ping and UDP echo (port 7).
//!
//! ```sh
//! sudo cargo run -p ustack-devices --example tun_echo -- [--tap] [IFNAME] [SECONDS]
//! ping 10.201.0.2
//! echo hello | nc -u -w1 10.201.0.2 7
//! ```
//!
//! Creates IFNAME (default `ustack0`) in the current network namespace,
//! gives the kernel side 10.201.0.1/24, runs the stack at 10.201.0.2 for
//! SECONDS (default 60), then prints its counters. The interface goes away
//! when the program exits. Log with RUST_LOG (e.g. RUST_LOG=debug).

use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::time::Duration;

use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Device, Driver, KernelIf, TunOptions};

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let tap = args.first().is_some_and(|a| a == "--tap");
    if tap {
        args.remove(0);
    }
    let name = args.first().cloned().unwrap_or_else(|| "ustack0".into());
    let secs: u64 = match args.get(1).map(|s| s.parse()) {
        None => 60,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("tun_echo: SECONDS: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = TunOptions::new(&name);
    let result = if tap {
        opts.open_tap().map(|d| Box::new(d) as Box<dyn Device>)
    } else {
        opts.open_tun().map(|d| Box::new(d) as Box<dyn Device>)
    };
    match result.and_then(|dev| run(&name, dev, secs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(name: &str, dev: Box<dyn Device>, secs: u64) -> std::io::Result<()> {
    KernelIf::new(name, "10.201.0.1/24".parse().unwrap())
        .mtu(dev.mtu())
        .apply(None)?;
    let medium = dev.medium();
    let mut stack =
        Stack::new(StackConfig::new(medium, "10.201.0.2/24".parse().unwrap()).with_mtu(dev.mtu()))
            .map_err(std::io::Error::other)?;
    let sock = stack.udp_open();
    stack
        .udp_bind(sock, "0.0.0.0:7".parse::<SocketAddrV4>().unwrap())
        .map_err(std::io::Error::from)?;
    println!(
        "ustack at 10.201.0.2 on {name} ({}), kernel side 10.201.0.1/24, for {secs} s",
        if medium == Medium::Ip { "TUN" } else { "TAP" }
    );
    println!("try: ping 10.201.0.2   or   echo hello | nc -u -w1 10.201.0.2 7");
    let mut driver = Driver::new(dev);
    let mut buf = vec![0u8; 65536];
    driver.run_until(&mut stack, Duration::from_secs(secs), |s| {
        while let Ok((n, _, from)) = s.udp_recv_from(sock, &mut buf) {
            let _ = s.udp_send_to(sock, &buf[..n], Some(from));
        }
        false
    })?;
    print!("{}", stack.counters());
    print!("{}", driver.device().stats());
    Ok(())
}
