//! The sans-IO protocol core of ustack.
//!
//! The core is fed `(now, packet)` and drained for outgoing packets; it says
//! when it next needs to run with `poll_at()`. It reads no clock, spawns no
//! thread and owns no file descriptor.

pub mod time;

pub use time::{Duration, Instant};
