//! Debian's unmodified programs on ustack under `LD_PRELOAD`, with the
//! kernel's programs as their peers, each test in its own namespace.

mod common;

use common::{check, run, Lab};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// `python3 -m http.server` on ustack serves 100 MiB intact to the kernel's curl.
#[test]
fn python_http_server_serves_100_mib_to_kernel_curl() {
    let Some(mut lab) = Lab::new("py", 1, &["python3", "curl", "nc"]) else {
        return;
    };
    let file = lab.random_file("big.bin", 100 * MIB, 21);
    let ip = lab.our_ip();
    let server = lab.preloaded("python3", &["-m", "http.server", "--bind", &ip, "8000"]);
    lab.spawn("http", server);
    lab.wait_listening(&ip, 8000, "http");
    let got = lab.dir.join("got.bin");
    let out = run(
        lab.kernel(
            "curl",
            &[
                "-sS",
                "--max-time",
                "120",
                "-o",
                got.to_str().unwrap(),
                &format!("http://{ip}:8000/big.bin"),
            ],
        ),
        None,
        Duration::from_secs(150),
    );
    check("kernel curl from python3 on ustack", &out);
    let want = std::fs::read(&file).unwrap();
    let have = std::fs::read(&got).unwrap();
    assert_eq!(
        have.len(),
        want.len(),
        "length of the download\n{}",
        lab.log("http")
    );
    assert!(have == want, "the 100 MiB arrived with different bytes");
}

/// `curl` on ustack downloads from the kernel's http.server, and with
/// USTACK_STATS=1 prints the counters and socket table at exit.
#[test]
fn curl_on_ustack_downloads_from_kernel_server() {
    let Some(mut lab) = Lab::new("curl", 2, &["python3", "curl", "nc"]) else {
        return;
    };
    let file = lab.random_file("page.bin", 5 * MIB, 22);
    let kip = lab.kernel_ip();
    let server = lab.kernel("python3", &["-m", "http.server", "--bind", &kip, "8001"]);
    lab.spawn("http", server);
    lab.wait_listening(&kip, 8001, "http");
    let got = lab.dir.join("got.bin");
    let mut curl = lab.preloaded(
        "curl",
        &[
            "-sS",
            "--max-time",
            "60",
            "-o",
            got.to_str().unwrap(),
            &format!("http://{kip}:8001/page.bin"),
        ],
    );
    let pcap = lab.dir.join("curl.pcap");
    curl.env("USTACK_STATS", "1").env("USTACK_PCAP", &pcap);
    let out = run(curl, None, Duration::from_secs(90));
    check("curl on ustack", &out);
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(&file).unwrap(),
        "download differs"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 active connection opening\n") && stderr.contains("Local Address:Port"),
        "USTACK_STATS=1 printed no counters and socket table with curl's connection: {stderr}"
    );
    let captured = std::fs::metadata(&pcap).map_or(0, |m| m.len());
    assert!(
        captured > 5 * MIB as u64,
        "USTACK_PCAP captured only {captured} bytes"
    );
}

/// With USTACK_TAP the stack runs on Ethernet (ARP for the kernel's address).
#[test]
fn curl_on_ustack_over_a_tap() {
    let Some(mut lab) = Lab::with_device("tap", 8, &["python3", "curl", "nc"], true) else {
        return;
    };
    let file = lab.random_file("page.bin", MIB, 23);
    let kip = lab.kernel_ip();
    let server = lab.kernel("python3", &["-m", "http.server", "--bind", &kip, "8002"]);
    lab.spawn("http", server);
    lab.wait_listening(&kip, 8002, "http");
    let url = format!("http://{kip}:8002/page.bin");
    let out = run(
        lab.preloaded("curl", &["-sS", "--max-time", "60", &url]),
        None,
        Duration::from_secs(90),
    );
    check("curl on ustack over a TAP", &out);
    assert!(
        out.stdout == std::fs::read(&file).unwrap(),
        "download differs"
    );
}

/// `nc` both ways, ustack listening and connecting: the sender sends its
/// file and half-closes (`-N`), the receiver reads to EOF and closes.
/// (Both files at once over one connection would race in nc itself: it
/// quits when the network side ends, even with stdin left to send.)
#[test]
fn nc_both_ways_with_half_close() {
    let Some(mut lab) = Lab::new("nc", 3, &["nc"]) else {
        return;
    };
    let a = std::fs::read(lab.random_file("a.bin", 3 * MIB, 31)).unwrap();
    let (ip, kip) = (lab.our_ip(), lab.kernel_ip());
    let mut port = 9000;
    for ustack_listens in [true, false] {
        for ustack_sends in [true, false] {
            port += 1;
            let what = format!("ustack listens: {ustack_listens}, ustack sends: {ustack_sends}");
            let (listen_ip, sender_is_listener) = if ustack_listens {
                (ip.clone(), ustack_sends)
            } else {
                (kip.clone(), !ustack_sends)
            };
            let p = port.to_string();
            let listen_args = if sender_is_listener {
                vec!["-N", "-l", listen_ip.as_str(), p.as_str()]
            } else {
                vec!["-l", listen_ip.as_str(), p.as_str()]
            };
            let connect_args = if sender_is_listener {
                vec![listen_ip.as_str(), p.as_str()]
            } else {
                vec!["-N", listen_ip.as_str(), p.as_str()]
            };
            // The listener runs in the background with its file on stdin
            // (sending) or its output to a file (receiving).
            let redirect = if sender_is_listener {
                "< a.bin"
            } else {
                "> got.bin"
            };
            let script = format!("exec nc {} {redirect}", listen_args.join(" "));
            let listener = if ustack_listens {
                lab.preloaded("sh", &["-c", &script])
            } else {
                lab.kernel("sh", &["-c", &script])
            };
            let _ = std::fs::remove_file(lab.dir.join("got.bin"));
            let tag = format!("listener{port}");
            lab.spawn(&tag, listener);
            let input = (!sender_is_listener).then(|| a.clone());
            let out = retry_refused(|| {
                let cmd = if ustack_listens {
                    lab.kernel("nc", &connect_args)
                } else {
                    lab.preloaded("nc", &connect_args)
                };
                run(cmd, input.clone(), Duration::from_secs(60))
            });
            check(&format!("nc ({what})"), &out);
            let received = if sender_is_listener {
                out.stdout
            } else {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while std::fs::read(lab.dir.join("got.bin"))
                    .unwrap_or_default()
                    .len()
                    < a.len()
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::fs::read(lab.dir.join("got.bin")).unwrap_or_default()
            };
            assert!(
                received.len() == a.len() && received == a,
                "{what}: received {} bytes of {}, or different ones\n{}",
                received.len(),
                a.len(),
                lab.log(&tag)
            );
            // The listener ends with the connection; a preloaded one must be
            // gone (the TUN free) before the next one starts.
            let mut listener = lab.children.pop().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while listener.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let status = listener.try_wait().unwrap();
            let _ = listener.kill();
            let _ = listener.wait();
            assert!(
                status.is_some_and(|s| s.success()),
                "{what}: the listener did not exit cleanly ({status:?})\n{}",
                lab.log(&tag)
            );
        }
    }
}

/// Runs `f` again (up to 100 times, 100 ms apart) while the connection is
/// refused because the server has not started listening yet.
fn retry_refused(mut f: impl FnMut() -> std::process::Output) -> std::process::Output {
    for _ in 0..100 {
        let out = f();
        // iperf3 -J reports the refusal in its JSON on stdout; nc without
        // -v exits 1 without a word, having received nothing.
        let refused = String::from_utf8_lossy(&out.stderr).contains("refused")
            || String::from_utf8_lossy(&out.stdout).contains("refused")
            || (out.status.code() == Some(1) && out.stdout.is_empty() && out.stderr.is_empty());
        if out.status.success() || !refused {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// `redis-server` on ustack answers the kernel's `redis-cli` and
/// `redis-benchmark -n 10000`.
#[test]
fn redis_server_answers_kernel_benchmark() {
    let Some(mut lab) = Lab::new(
        "redis",
        4,
        &["redis-server", "redis-cli", "redis-benchmark", "nc"],
    ) else {
        return;
    };
    let ip = lab.our_ip();
    // No persistence: a background save would fork, and the stack stays in the parent.
    let server = lab.preloaded(
        "redis-server",
        &[
            "--bind",
            &ip,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ],
    );
    lab.spawn("redis", server);
    lab.wait_listening(&ip, 6379, "redis");
    let out = run(
        lab.kernel("redis-cli", &["-h", &ip, "set", "greeting", "hello ustack"]),
        None,
        Duration::from_secs(20),
    );
    check("redis-cli set", &out);
    let out = run(
        lab.kernel("redis-cli", &["-h", &ip, "get", "greeting"]),
        None,
        Duration::from_secs(20),
    );
    check("redis-cli get", &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello ustack");
    let out = run(
        lab.kernel(
            "redis-benchmark",
            &["-h", &ip, "-n", "10000", "-q", "-t", "set,get,incr,lpush"],
        ),
        None,
        Duration::from_secs(120),
    );
    check("redis-benchmark", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    let finished = text.matches("requests per second").count();
    assert_eq!(
        finished,
        4,
        "redis-benchmark did not finish all four tests: {text}\n{}",
        lab.log("redis")
    );
    let out = run(
        lab.kernel("redis-cli", &["-h", &ip, "get", "counter:__rand_int__"]),
        None,
        Duration::from_secs(20),
    );
    check("redis-cli after the benchmark", &out);
}

/// `nginx` on ustack (epoll, sendfile, writev) serves a file to the
/// kernel's `wrk` for 5 s without errors.
#[test]
fn nginx_serves_kernel_wrk_for_5_s() {
    let Some(mut lab) = Lab::new("nginx", 5, &["nginx", "wrk", "curl", "nc"]) else {
        return;
    };
    let file = lab.random_file("file.bin", 100_000, 51);
    let ip = lab.our_ip();
    let dir = lab.dir.display().to_string();
    // One process: workers forked by a master would not have the stack.
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid {dir}/nginx.pid;\n\
         error_log stderr warn;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  sendfile on;\n\
         client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};\n\
         uwsgi_temp_path {dir}; scgi_temp_path {dir};\n  server {{ listen {ip}:8080; root {dir}; }}\n}}\n"
    );
    let conf_path = lab.dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let server = lab.preloaded("nginx", &["-c", conf_path.to_str().unwrap(), "-p", &dir]);
    lab.spawn("nginx", server);
    lab.wait_listening(&ip, 8080, "nginx");
    let url = format!("http://{ip}:8080/file.bin");
    let got = lab.dir.join("got.bin");
    let out = run(
        lab.kernel("curl", &["-sS", "-o", got.to_str().unwrap(), &url]),
        None,
        Duration::from_secs(20),
    );
    check("curl from nginx", &out);
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(&file).unwrap(),
        "nginx served different bytes"
    );
    let out = run(
        lab.kernel("wrk", &["-t1", "-c4", "-d5s", &url]),
        None,
        Duration::from_secs(60),
    );
    check("wrk", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Socket errors") && !text.contains("Non-2xx"),
        "wrk saw errors: {text}"
    );
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        requests >= 100,
        "only {requests} requests in 5 s: {text}\n{}",
        lab.log("nginx")
    );
}

/// `iperf3 -s` on ustack, measured from the kernel side, both directions.
#[test]
fn iperf3_server_measured_from_kernel() {
    let Some(mut lab) = Lab::new("iperf", 6, &["iperf3", "nc"]) else {
        return;
    };
    let ip = lab.our_ip();
    let server = lab.preloaded("iperf3", &["-s", "-B", &ip, "-p", "5201"]);
    lab.spawn("iperf", server);
    std::thread::sleep(Duration::from_millis(300));
    for reverse in [false, true] {
        let mut args = vec!["-c", ip.as_str(), "-p", "5201", "-t", "2", "-J"];
        if reverse {
            args.push("-R");
        }
        let out = retry_refused(|| run(lab.kernel("iperf3", &args), None, Duration::from_secs(60)));
        check("iperf3 -c", &out);
        let text = String::from_utf8_lossy(&out.stdout);
        let received = text
            .split("\"sum_received\"")
            .nth(1)
            .and_then(|t| t.split("\"bytes\":").nth(1))
            .and_then(|t| t.split([',', '\n']).next())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            received > MIB as u64,
            "reverse={reverse}: {received} bytes: {text}\n{}",
            lab.log("iperf")
        );
    }
}

/// Python's socket, select and os modules under the preload, against
/// kernel peers: epoll/select/poll over pipes, eventfds and ustack sockets,
/// readability and writability mirrored, TCP_INFO, dup/fcntl/ioctl, fork,
/// UDP, sendfile, threads, half-close (see `tests/programs/behaviour.py`).
#[test]
fn python_socket_calls_behave_as_on_linux() {
    let Some(mut lab) = Lab::new("beh", 7, &["python3"]) else {
        return;
    };
    let programs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs");
    let (ip, kip) = (lab.our_ip(), lab.kernel_ip());
    let peer = lab.kernel("python3", &[&format!("{programs}/peer.py"), &kip]);
    lab.spawn("peer", peer);
    let out = run(
        lab.preloaded("python3", &[&format!("{programs}/behaviour.py"), &kip, &ip]),
        None,
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all ok"),
        "{}\nstdout: {text}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        lab.log("peer")
    );
}

/// A C program (compiled here with `cc`) for the calls Python cannot make:
/// sendmmsg/recvmmsg, dup3, ppoll, pselect, epoll_pwait, F_DUPFD_CLOEXEC,
/// FIONBIO, `struct tcp_info` as glibc declares it, sendfile with an offset
/// (see `tests/programs/calls.c`).
#[test]
fn c_socket_calls_behave_as_on_linux() {
    let Some(mut lab) = Lab::new("calls", 9, &["python3", "cc"]) else {
        return;
    };
    let programs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs");
    let exe = lab.dir.join("calls");
    let out = run(
        {
            let mut cc = std::process::Command::new("cc");
            cc.args([
                "-O1",
                "-o",
                exe.to_str().unwrap(),
                &format!("{programs}/calls.c"),
            ]);
            cc
        },
        None,
        Duration::from_secs(60),
    );
    check("cc calls.c", &out);
    let kip = lab.kernel_ip();
    let peer = lab.kernel("python3", &[&format!("{programs}/peer.py"), &kip]);
    lab.spawn("peer", peer);
    let out = run(
        lab.preloaded(exe.to_str().unwrap(), &[&kip]),
        None,
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all ok"),
        "{}\nstdout: {text}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        lab.log("peer")
    );
}
