//! Throughput of the parallel gzip writer on 256 MiB of semi-compressible data, with one
//! worker and with one per core: `cargo run --release --example pgzip_speed`.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Instant;

use rbuild_builder::snapshot::ParallelGzip;

fn main() {
    let mut data = vec![0u8; 256 << 20];
    let mut x: u64 = 1;
    for (i, b) in data.iter_mut().enumerate() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        *b = if i % 4096 < 2048 { (x >> 56) as u8 } else { b'a' + (i % 16) as u8 };
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for threads in [1, cores] {
        let start = Instant::now();
        let mut gz = ParallelGzip::with_threads(std::io::sink(), 6, threads);
        for chunk in data.chunks(64 << 10) {
            gz.write_all(chunk).unwrap();
        }
        gz.finish().unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!("{threads} thread(s): {:.0} MiB/s", 256.0 / secs);
    }
}
