//! gzip on every core: the input is cut into 1 MiB chunks, each compressed on its own
//! thread into a complete gzip member, and the members are written in order. A gzip file
//! may hold several members (RFC 1952), and every gzip reader (Go's, zlib's, flate2's
//! `MultiGzDecoder`, `gzip -d`) reads them as one stream.
//!
//! Written here rather than taken from a crate: the parallel gzip crate (`gzp`) needs a C
//! zlib and a `'static` writer; independent members need neither, compress to within a
//! fraction of a percent of one stream, and come out the same whatever the number of
//! threads, so layer digests stay reproducible across machines.

use std::io::{self, Write};

const CHUNK: usize = 1 << 20;

/// A writer that gzip-compresses what it is given on several threads.
#[derive(Debug)]
pub struct ParallelGzip<W: Write> {
    inner: W,
    level: flate2::Compression,
    threads: usize,
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    wrote_member: bool,
}

fn member(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let mut enc =
        flate2::GzBuilder::new().mtime(0).write(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data)?;
    enc.finish()
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `inner` at `level` (0 to 9), on as many threads as there are cores.
    pub fn new(inner: W, level: u32) -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        ParallelGzip {
            inner,
            level: flate2::Compression::new(level.min(9)),
            threads,
            pending: Vec::new(),
            current: Vec::with_capacity(CHUNK),
            wrote_member: false,
        }
    }

    /// Compresses the pending chunks, one thread each, and writes them in order.
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let level = self.level;
        let chunks = std::mem::take(&mut self.pending);
        let members: Vec<io::Result<Vec<u8>>> = if chunks.len() == 1 {
            vec![member(&chunks[0], level)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> =
                    chunks.iter().map(|c| s.spawn(move || member(c, level))).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(io::Error::other("a compression thread panicked"))
                        })
                    })
                    .collect()
            })
        };
        for m in members {
            self.inner.write_all(&m?)?;
            self.wrote_member = true;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || !self.wrote_member && self.pending.is_empty() {
            let last = std::mem::take(&mut self.current);
            self.pending.push(last);
        }
        self.flush_pending()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let room = CHUNK - self.current.len();
            let take = room.min(buf.len());
            self.current.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.current.len() == CHUNK {
                let full = std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK));
                self.pending.push(full);
                if self.pending.len() >= self.threads * 2 {
                    self.flush_pending()?;
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are only cut at fixed sizes, so that the output does not depend on when
        // callers flush.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_read_back_as_one_stream() {
        for size in [0usize, 10, CHUNK - 1, CHUNK, 5 * CHUNK + 123] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut gz = ParallelGzip::new(Vec::new(), 6);
            for piece in data.chunks(70_000) {
                gz.write_all(piece).unwrap();
            }
            let out = gz.finish().unwrap();
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "size {size}");
            let mut one = ParallelGzip::new(Vec::new(), 6);
            one.threads = 1;
            one.write_all(&data).unwrap();
            assert_eq!(
                one.finish().unwrap(),
                out,
                "the output does not depend on the thread count"
            );
        }
    }
}
