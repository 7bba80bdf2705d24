//! Message framing over a byte stream (粘包/半包: frames glued together and
//! cut apart by TCP) with tokio-util's codecs on ustack streams, and an
//! application heartbeat that finds a peer gone silent, on the in-memory
//! link.

// The example's heartbeat, tested here.
#[path = "../examples/framing.rs"]
mod example;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout, Instant};
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec, LinesCodec};
use ustack::memnet::pair;
use ustack::{Mode, Runtime};
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Device, DeviceStats, Impairments, SharedLink};
use ustack_tokio::{TcpListener, TcpStream};

const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LIMIT: Duration = Duration::from_secs(20);

async fn connected(a: &Runtime, b: &Runtime, port: u16) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(b, (B, port)).await.unwrap();
    let (c, s) = timeout(LIMIT, async {
        tokio::join!(TcpStream::connect(a, (B, port)), l.accept())
    })
    .await
    .unwrap();
    (c.unwrap(), s.unwrap().0)
}

/// Two length-delimited frames cut at every byte boundary in turn: the
/// first part, a pause (so it leaves as a segment of its own), the rest.
/// Then all of them glued into one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_delimited_frames_split_at_every_byte_and_glued_decode_intact() {
    let (a, b) = pair().unwrap();
    let (c, s) = connected(&a, &b, 100).await;
    c.set_nodelay(true).unwrap();
    let frames: Vec<Bytes> = vec![
        Bytes::from_static(b"first frame"),
        Bytes::from(vec![7u8; 40]),
    ];
    let mut wire = BytesMut::new();
    let mut codec = LengthDelimitedCodec::new();
    for f in &frames {
        codec.encode(f.clone(), &mut wire).unwrap();
    }
    let wire = wire.freeze();
    let rounds = wire.len() + 1;
    let mut reader = FramedRead::new(s, LengthDelimitedCodec::new());
    let w = wire.clone();
    let writer = tokio::spawn(async move {
        let mut c = c;
        for k in 0..=w.len() {
            c.write_all(&w[..k]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
            c.write_all(&w[k..]).await.unwrap();
        }
        // Glued: every round's frames in one write.
        let glued: Vec<u8> = w.iter().copied().cycle().take(w.len() * 20).collect();
        c.write_all(&glued).await.unwrap();
        c
    });
    for round in 0..rounds + 20 {
        for f in &frames {
            let got = timeout(LIMIT, reader.next())
                .await
                .expect("a frame in time")
                .expect("not EOF")
                .unwrap();
            assert_eq!(&got[..], &f[..], "round {round}");
        }
    }
    let _c = writer.await.unwrap();
}

/// Lines written one byte per segment (TCP_NODELAY, a pause after each),
/// then many in one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_cut_into_one_byte_segments_and_glued_decode_intact() {
    let (a, b) = pair().unwrap();
    let (c, s) = connected(&a, &b, 101).await;
    c.set_nodelay(true).unwrap();
    let lines = ["hello", "", "a longer line with spaces", "last"];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let t = text.clone();
    let before = a.counters().tcp.out_segs;
    let writer = tokio::spawn(async move {
        let mut c = c;
        for byte in t.as_bytes() {
            c.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        c.write_all(t.repeat(50).as_bytes()).await.unwrap();
        c
    });
    let mut reader = FramedRead::new(s, LinesCodec::new());
    for round in 0..51 {
        for l in lines {
            let got = timeout(LIMIT, reader.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(got, l, "round {round}");
        }
    }
    let _c = writer.await.unwrap();
    let segments = a.counters().tcp.out_segs - before;
    assert!(
        segments >= text.len() as u64,
        "the bytes were not cut apart ({segments} segments for {} bytes)",
        text.len()
    );
}

/// A header announcing a 1 GiB frame is an error at once (InvalidData),
/// and the reader holds no more than its limit while it says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_and_lines_are_rejected_without_unbounded_buffering() {
    let (a, b) = pair().unwrap();
    let (mut c, s) = connected(&a, &b, 102).await;
    let writer = tokio::spawn(async move {
        c.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        // What follows would be the frame's body; the reader must not wait for it.
        let _ = c.write_all(&vec![0u8; 4 << 20]).await;
        c
    });
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(64 * 1024)
        .new_codec();
    let mut reader = FramedRead::new(s, codec);
    let e = timeout(LIMIT, reader.next())
        .await
        .unwrap()
        .unwrap()
        .expect_err("a 1 GiB frame over a 64 KiB limit");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert!(
        reader.read_buffer().capacity() <= 1 << 20,
        "buffered {} bytes",
        reader.read_buffer().capacity()
    );
    drop(reader);
    drop(writer);

    let (mut c, s) = connected(&a, &b, 103).await;
    tokio::spawn(async move {
        // A "line" of 4 MiB with no newline.
        let _ = c.write_all(&vec![b'x'; 4 << 20]).await;
    });
    let mut reader = FramedRead::new(s, LinesCodec::new_with_max_length(8 * 1024));
    let e = timeout(LIMIT, reader.next())
        .await
        .unwrap()
        .unwrap()
        .expect_err("a line over the limit");
    assert!(
        matches!(e, tokio_util::codec::LinesCodecError::MaxLineLengthExceeded),
        "{e:?}"
    );
    assert!(
        reader.read_buffer().capacity() <= 1 << 20,
        "buffered {} bytes",
        reader.read_buffer().capacity()
    );
}

/// A device that can be cut: from then on every frame either way is
/// dropped (100% loss in the device layer), and neither end is told.
struct Cuttable<D> {
    inner: D,
    cut: Arc<AtomicBool>,
}

impl<D: Device> Device for Cuttable<D> {
    fn medium(&self) -> Medium {
        self.inner.medium()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len()
    }
    fn recv(&mut self, now: ustack_core::Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.inner.recv(now, buf)? {
                Some(_) if self.cut.load(Ordering::Relaxed) => continue,
                other => return Ok(other),
            }
        }
    }
    fn send(&mut self, now: ustack_core::Instant, frame: &[u8]) -> io::Result<()> {
        if self.cut.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.send(now, frame)
    }
    fn poll_at(&self) -> Option<ustack_core::Instant> {
        self.inner.poll_at()
    }
    fn service(&mut self, now: ustack_core::Instant) -> io::Result<()> {
        self.inner.service(now)
    }
    fn as_raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.as_raw_fd()
    }
    fn stats(&self) -> DeviceStats {
        self.inner.stats()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_finds_a_silently_vanished_peer_within_its_deadline() {
    let link = SharedLink::new(5, Impairments::none());
    let cut = Arc::new(AtomicBool::new(false));
    let host = |addr: Ipv4Addr, dev: Box<dyn Device + Send>| {
        let cfg = StackConfig::new(Medium::Ip, ustack_core::wire::Ipv4Cidr::new(addr, 24))
            .with_seed(u64::from(u32::from(addr)));
        Runtime::new(Stack::new(cfg).unwrap(), dev, link.clock(), Mode::Thread).unwrap()
    };
    let a = host(
        Ipv4Addr::new(10, 0, 0, 1),
        Box::new(Cuttable {
            inner: link.port(Medium::Ip, 1500).unwrap(),
            cut: cut.clone(),
        }),
    );
    let b = host(B, Box::new(link.port(Medium::Ip, 1500).unwrap()));
    let (c, s) = connected(&a, &b, 104).await;
    // The peer answers every ping with a pong.
    tokio::spawn(example::answer_pings(s));
    let every = Duration::from_millis(100);
    let deadline = Duration::from_millis(500);
    let hb = tokio::spawn(example::heartbeat(c, every, deadline));
    // Healthy for a while: the heartbeat does not fire.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!hb.is_finished(), "a false alarm on a healthy link");
    cut.store(true, Ordering::Relaxed);
    let cut_at = Instant::now();
    let (silence, c) = timeout(Duration::from_secs(5), hb)
        .await
        .expect("the heartbeat noticed")
        .unwrap()
        .expect("silence, not an error");
    let noticed = cut_at.elapsed();
    assert!(silence >= deadline, "{silence:?}");
    assert!(
        noticed <= deadline + every + Duration::from_millis(300),
        "noticed {noticed:?} after the cut, deadline {deadline:?}"
    );
    // TCP itself has not noticed: the connection is still established
    // (retransmitting), as keepalive would stay silent for minutes.
    let info = match a.getsockopt(
        c.as_raw_fd(),
        ustack::posix::IPPROTO_TCP,
        ustack::posix::TCP_INFO,
    ) {
        Ok(ustack::OptVal::TcpInfo(i)) => i,
        other => panic!("TCP_INFO: {other:?}"),
    };
    let state = format!("{:?}", info.state);
    assert!(state.contains("Estab"), "{state}");
    eprintln!("heartbeat noticed the silence {noticed:?} after the cut; TCP says {state}");
}

#[test]
fn the_framing_example_runs() {
    example::main().unwrap();
}
