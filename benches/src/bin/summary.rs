//! Floors and the summary table only (no criterion), as Markdown for BENCHMARKS.md:
//! `cargo run --release -p benches --bin summary`.

use benches::cases::{markdown_table, summary};
use benches::peak::MachinePeak;

fn main() {
    // Floors measured before and after the kernels, keeping the best of each figure.
    let before = MachinePeak::measure();
    println!("before the kernels: {before}");
    match summary() {
        Ok(rows) => {
            let after = MachinePeak::measure();
            println!("after the kernels:  {after}");
            let peak = before.best(after);
            println!("floors (best of each): {peak}\n");
            print!("{}", markdown_table(&rows, &peak));
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
