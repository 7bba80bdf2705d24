//! `--stats`: rendered by `ustack::stats` (shared with the preload library).

pub use ustack::stats::render;
