//! The benchmark's transfers complete and verify on small sizes (no timing).

use ustack_bench::ustack_peer::{self, LossyOptions};
use ustack_bench::{smoltcp_peer, BulkOptions};
use ustack_core::{Congestion, Duration};

fn opts(offload: bool) -> BulkOptions {
    BulkOptions {
        bytes: 4 << 20,
        mtu: 1500,
        buf: 256 * 1024,
        chunk: 64 * 1024,
        offload,
        timeout: std::time::Duration::from_secs(60),
    }
}

#[test]
fn lossless_halves_move_every_byte() {
    for offload in [false, true] {
        let o = opts(offload);
        assert_eq!(ustack_peer::run(&o).unwrap().bytes, o.bytes);
        assert_eq!(smoltcp_peer::run(&o).unwrap().bytes, o.bytes);
    }
}

#[test]
fn lossy_transfer_completes_for_both_controllers() {
    for congestion in [Congestion::NewReno, Congestion::Cubic, Congestion::Bbr] {
        let r = ustack_peer::run_lossy(&LossyOptions {
            bytes: 1 << 20,
            mtu: 1500,
            buf: 256 * 1024,
            chunk: 64 * 1024,
            loss: 0.05,
            delay: Duration::from_millis(10),
            congestion,
            seed: 7,
            limit: Duration::from_secs(3600),
            bandwidth_bps: None,
            queue_limit: 0,
        })
        .unwrap();
        assert_eq!(r.bytes, 1 << 20);
        assert!(r.frames_lost > 0 && r.mbps() > 0.0, "{r:?}");
    }
}
