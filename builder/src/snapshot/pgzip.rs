//! gzip on every core: the input is cut into 1 MiB chunks, each compressed on its own
//! thread into a complete gzip member, and the members are written in order. A gzip file
//! may hold several members (RFC 1952), and every gzip reader (Go's, zlib's, flate2's
//! `MultiGzDecoder`, `gzip -d`) reads them as one stream.
//!
//! Written here rather than taken from a crate: the parallel gzip crate (`gzp`) needs a C
//! zlib and a `'static` writer; independent members need neither, compress to within a
//! fraction of a percent of one stream, and come out the same whatever the number of
//! threads, so layer digests stay reproducible across machines.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>);

/// A writer that gzip-compresses what it is given on several threads, while the caller
/// goes on producing data: chunks go to a pool of worker threads, and compressed members
/// are written, in order, from the caller's thread as they come back.
#[derive(Debug)]
pub struct ParallelGzip<W: Write> {
    inner: W,
    current: Vec<u8>,
    /// Sequence number of the next chunk to hand out, and of the next member to write.
    next_in: u64,
    next_out: u64,
    /// Members that came back ahead of their turn.
    ready: BTreeMap<u64, Vec<u8>>,
    /// At most this many chunks are in flight, which bounds memory.
    max_in_flight: u64,
    /// Dropping the sender (on finish, or when the writer is dropped) ends the workers.
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
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
        let threads = crate::cores();
        Self::with_threads(inner, level, threads)
    }

    /// Compresses on `threads` worker threads.
    pub fn with_threads(inner: W, level: u32, threads: usize) -> Self {
        let level = flate2::Compression::new(level.min(9));
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads.max(1))
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                std::thread::spawn(move || loop {
                    // The lock is held only to take one job; a poisoned lock means another
                    // worker panicked, and this one stops too.
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, data)) = job else { return };
                    if done.send((seq, member(&data, level))).is_err() {
                        return;
                    }
                })
            })
            .collect();
        ParallelGzip {
            inner,
            current: Vec::with_capacity(CHUNK),
            next_in: 0,
            next_out: 0,
            ready: BTreeMap::new(),
            max_in_flight: 2 * threads.max(1) as u64 + 1,
            jobs: Some(job_tx),
            done: done_rx,
            workers,
        }
    }

    fn submit(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        while self.next_in - self.next_out >= self.max_in_flight {
            self.collect_one()?;
        }
        let sent = self.jobs.as_ref().map(|j| j.send((self.next_in, chunk)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(io::Error::other("the gzip worker threads stopped"));
        }
        self.next_in += 1;
        self.write_ready()
    }

    /// Waits for one member to come back.
    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, result) =
            self.done.recv().map_err(|_| io::Error::other("the gzip worker threads stopped"))?;
        self.ready.insert(seq, result?);
        self.write_ready()
    }

    /// Writes every member whose turn has come.
    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(m) = self.ready.remove(&self.next_out) {
            self.inner.write_all(&m)?;
            self.next_out += 1;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || self.next_in == 0 {
            let last = std::mem::take(&mut self.current);
            self.submit(last)?;
        }
        while self.next_out < self.next_in {
            self.collect_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
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
                self.submit(full)?;
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
            let mut one = ParallelGzip::with_threads(Vec::new(), 6, 1);
            one.write_all(&data).unwrap();
            assert_eq!(
                one.finish().unwrap(),
                out,
                "the output does not depend on the thread count"
            );
        }
    }
}
