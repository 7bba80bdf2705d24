//! Messages over a byte stream with tokio-util's codecs on ustack, and an
//! application heartbeat: TCP delivers bytes, not messages (a read may
//! hold half a frame, or several glued together), and a peer that
//! vanishes without a FIN or RST goes unnoticed by TCP for minutes (the
//! keepalive's two hours, or the retransmission timeout's backoff). On
//! the in-memory network, no root needed:
//!
//! ```sh
//! cargo run -p ustack-tokio --example framing
//! ```
//!
//! `crates/tokio/tests/framing.rs` tests the same pieces: frames cut at
//! every byte and glued, oversized frames refused, and this heartbeat
//! finding a peer silenced by 100% loss in the device layer.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use std::io;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec};
use ustack_tokio::{TcpListener, TcpStream};

/// The longest heartbeat line accepted.
const MAX_LINE: usize = 1024;

/// The client side of an application heartbeat: a `ping` line every
/// `every`; any line from the peer counts as a sign of life; silence for
/// `deadline` ends it. Returns how long the silence had lasted, and the
/// stream (its halves put back together) for whatever comes next.
pub async fn heartbeat(
    stream: TcpStream,
    every: Duration,
    deadline: Duration,
) -> io::Result<(Duration, TcpStream)> {
    let (r, w) = stream.into_split();
    let mut r = FramedRead::new(r, LinesCodec::new_with_max_length(MAX_LINE));
    let mut w = FramedWrite::new(w, LinesCodec::new());
    let mut tick = tokio::time::interval(every);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                w.send("ping").await.map_err(io::Error::other)?;
            }
            line = r.next() => match line {
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            },
            _ = tokio::time::sleep_until(last_heard + deadline) => {
                let silence = last_heard.elapsed();
                let s = r.into_inner().reunite(w.into_inner()).map_err(io::Error::other)?;
                return Ok((silence, s));
            }
        }
    }
}

/// The other side: a `pong` for every line, until the stream ends.
pub async fn answer_pings(stream: TcpStream) {
    let (r, w) = stream.into_split();
    let mut r = FramedRead::new(r, LinesCodec::new_with_max_length(MAX_LINE));
    let mut w = FramedWrite::new(w, LinesCodec::new());
    while let Some(Ok(_)) = r.next().await {
        if w.send("pong").await.is_err() {
            break;
        }
    }
}

#[tokio::main]
pub async fn main() -> io::Result<()> {
    let (a, b) = ustack::memnet::pair()?;
    let listener = TcpListener::bind(&b, "10.0.0.2:7000").await?;
    // A server that answers every length-delimited frame with its length.
    tokio::spawn(async move {
        let (s, _) = listener.accept().await?;
        let mut framed = tokio_util::codec::Framed::new(
            s,
            LengthDelimitedCodec::builder()
                .max_frame_length(64 * 1024)
                .new_codec(),
        );
        while let Some(frame) = framed.next().await {
            let n = frame?.len();
            framed
                .send(bytes::Bytes::from(format!("{n} bytes")))
                .await?;
        }
        io::Result::Ok(())
    });
    let s = TcpStream::connect(&a, "10.0.0.2:7000").await?;
    let mut framed = tokio_util::codec::Framed::new(s, LengthDelimitedCodec::new());
    for msg in ["hello", "", "a frame of some length"] {
        framed
            .send(bytes::Bytes::from(msg.as_bytes().to_vec()))
            .await?;
        let answer = framed.next().await.expect("an answer")?;
        println!(
            "sent {msg:?}, the server says {}",
            String::from_utf8_lossy(&answer)
        );
    }

    // The heartbeat against a peer that answers: it runs until its time
    // is up (here 1 s), not until a false alarm.
    let listener = TcpListener::bind(&b, "10.0.0.2:7001").await?;
    tokio::spawn(async move {
        if let Ok((s, _)) = listener.accept().await {
            answer_pings(s).await;
        }
    });
    let s = TcpStream::connect(&a, "10.0.0.2:7001").await?;
    let hb = heartbeat(s, Duration::from_millis(100), Duration::from_millis(500));
    match tokio::time::timeout(Duration::from_secs(1), hb).await {
        Err(_) => println!("heartbeat: the peer answered every ping for 1 s"),
        Ok(r) => println!("heartbeat ended early: {r:?}"),
    }
    Ok(())
}
