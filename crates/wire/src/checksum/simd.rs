//! [`sum`](super::sum) built twice by `multiversion`: for baseline x86-64
//! (SSE2) and for AVX2 (most x86-64 parts since 2013), the AVX2 build
//! taken when the CPU has it (detected once, on the first call).
//!
//! Both are the portable code of the parent module, `sum_with`, inlined:
//! for AVX2 LLVM vectorises it into 256-bit registers, in steps of 128
//! bytes (32 lanes, no integer-side words), which measured fastest (25 ns
//! for 1448 bytes against 33 for the baseline's 96-byte steps).

use multiversion::multiversion;
use multiversion::target::match_target;

/// `sum` in the best build this CPU runs.
#[multiversion(targets("x86_64+avx2"))]
pub(super) fn sum(data: &[u8]) -> u64 {
    match_target! {
        "x86_64+avx2" => super::sum_with::<32, 0, 128>(data),
        _ => super::sum_with::<{ super::LANES }, { super::WORDS }, { super::STEP }>(data),
    }
}

/// Which build [`sum`] takes on this CPU.
#[cfg(test)]
#[multiversion(targets("x86_64+avx2"))]
pub(super) fn build() -> &'static str {
    match_target! {
        "x86_64+avx2" => "avx2",
        _ => "portable",
    }
}
