//! Parses every file given on the command line N times (for profiling):
//! `cargo run --release -p rbuild-parser --example parse_corpus -- N FILE...`
fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let files: Vec<String> = args.filter_map(|p| std::fs::read_to_string(p).ok()).collect();
    let mut ok = 0;
    for _ in 0..n {
        ok += files.iter().filter(|f| rbuild_parser::parse(f).is_ok()).count();
    }
    println!("{ok} parses");
}
