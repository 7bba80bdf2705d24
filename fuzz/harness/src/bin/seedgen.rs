//! Writes the seed corpora: `cargo run --manifest-path fuzz/Cargo.toml -p
//! ustack-fuzz-harness --bin seedgen -- fuzz/seeds`. Output is deterministic;
//! the directory's old files are replaced.

use std::fs;
use std::path::PathBuf;
use ustack_fuzz_harness::seeds::generate;
use ustack_fuzz_harness::stack::{run, Medium};

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let mut wire: Vec<Vec<u8>> = Vec::new();
    for (medium, target) in [
        (Medium::Ip, "stack_ip_input"),
        (Medium::Ethernet, "stack_eth_input"),
    ] {
        let seeds = generate(medium);
        let dir = root.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        for (name, input) in &seeds.stack {
            run(medium, input); // a seed must pass its own target
            fs::write(dir.join(name), input)?;
        }
        println!("{target}: {} seeds", seeds.stack.len());
        for f in seeds.wire {
            if !wire.contains(&f) {
                wire.push(f);
            }
        }
    }
    let dir = root.join("wire_parse");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    for (i, f) in wire.iter().enumerate() {
        ustack_fuzz_harness::wire::check(f);
        fs::write(dir.join(format!("frame-{i:03}")), f)?;
    }
    println!("wire_parse: {} seeds", wire.len());
    Ok(())
}
