//! Every wire parser on the same bytes, and emit/parse round trips.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack_fuzz_harness::wire::check(data);
});
