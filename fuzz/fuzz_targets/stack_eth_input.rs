//! A Medium::Ethernet stack (ARP included) fed a sequence of frames on a virtual clock.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ustack_fuzz_harness::stack::{run, Medium};

fuzz_target!(|data: &[u8]| {
    run(Medium::Ethernet, data);
});
