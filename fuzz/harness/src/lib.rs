//! The logic of ustack's fuzz targets, free of libFuzzer so it builds as a
//! plain crate too (for the seed generator, and for replaying inputs under a
//! debugger without sanitizers).

pub mod seeds;
pub mod stack;
pub mod wire;
