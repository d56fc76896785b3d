//! Streams split over threads, so that several cores work on them: [`Handoff`], a writer
//! that hands its bytes in large chunks to a thread that hashes them and on to one that
//! writes them (the caller makes a tar, the threads hash it and write it to its
//! file), and [`ReadAhead`], a reader whose bytes a thread produces ahead of it
//! (decompressing and hashing a layer while the caller creates its files).

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};

/// Bytes collected before a chunk goes to the writing thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight at most (so at most this many MiB are held in memory).
const DEPTH: usize = 4;

/// A buffer of fixed size whose bytes start at an address aligned for direct I/O
/// ([`Block::ALIGN`]), and how many of them are filled. The chunks of a stream are
/// blocks, so that a layer's bytes go from the file they are read from to the disk
/// without being copied on the way (see the store's `blobfile`).
///
/// The buffer is allocated whole but zeroed (so touched) only as far as bytes go in:
/// a new block of a small layer's stream cost a page fault per 4 KiB of its 4 MiB when
/// zeroed at once (2.7-3.2 ms of a 20 kB layer's 4 ms here, on the build's critical path
/// at the end of a stage). `Vec` gives this without `unsafe`: the buffer's length is
/// how far it is zeroed, and it never grows past the capacity it was made with, so its
/// address (and alignment) stays.
#[derive(Debug)]
pub struct Block {
    /// Zeroed up to its length; its capacity holds `start + size`.
    buf: Vec<u8>,
    start: usize,
    size: usize,
    len: usize,
}

impl Block {
    /// The alignment of the buffer: the largest logical block size of common devices
    /// (4 KiB; most take 512 bytes).
    pub const ALIGN: usize = 4096;

    /// How much more of the buffer is zeroed at a time as it fills.
    const ZEROED_STEP: usize = 256 << 10;

    /// An empty block of `size` bytes.
    pub fn new(size: usize) -> Self {
        let mut buf = Vec::<u8>::with_capacity(size + Self::ALIGN);
        // For bytes, `align_offset` always finds an offset below ALIGN (the `min` only
        // keeps the slices below in bounds were it ever not to).
        let start = buf.as_ptr().align_offset(Self::ALIGN).min(Self::ALIGN);
        buf.resize(start, 0);
        Block { buf, start, size, len: 0 }
    }

    /// How many bytes the block holds at most.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes filled.
    pub fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Room after them for at least `want` bytes (less when the block has less left),
    /// zeroed first where it was not yet.
    fn free(&mut self, want: usize) -> &mut [u8] {
        let from = self.start + self.len;
        let end = self.start + self.size;
        let need = from + want.min(end - from);
        if self.buf.len() < need {
            // Up to `end` at most, within the capacity: the buffer does not move.
            let zeroed = need.max(self.buf.len() + Self::ZEROED_STEP).min(end);
            self.buf.resize(zeroed, 0);
        }
        let have = end.min(self.buf.len());
        &mut self.buf[from..have]
    }

    /// Whether no room is left.
    pub fn is_full(&self) -> bool {
        self.len == self.size
    }

    /// Empties the block.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Copies as much of `data` as there is room for; returns how much.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.size - self.len);
        self.free(n)[..n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }
}

/// Collects written bytes into blocks of [`CHUNK`] bytes and sends each (made into a
/// `T`) to another thread; the write side of both [`Handoff`] and [`ReadAhead`].
pub struct Chunks<T> {
    tx: Option<SyncSender<T>>,
    /// Emptied blocks coming back, so the stream reuses a few buffers.
    spare: Option<Receiver<Block>>,
    buf: Block,
    wrap: fn(Block) -> T,
}

impl<T> Chunks<T> {
    fn new(tx: SyncSender<T>, spare: Option<Receiver<Block>>, wrap: fn(Block) -> T) -> Self {
        Chunks { tx: Some(tx), spare, buf: Block::new(CHUNK), wrap }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.len == 0 {
            return Ok(());
        }
        let next = self.spare.as_ref().and_then(|s| s.try_recv().ok());
        let full = std::mem::replace(&mut self.buf, next.unwrap_or_else(|| Block::new(CHUNK)));
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send((self.wrap)(full)).is_ok());
        if sent {
            Ok(())
        } else {
            // The other side stopped: its error is what its owner reports.
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "the other side of the stream stopped"))
        }
    }

    /// Appends the next `n` bytes of `from`, read straight into the blocks (not through
    /// a buffer of the caller's, as `io::copy` would); returns how many there were (fewer
    /// when `from` ends first).
    pub fn fill_from(&mut self, from: &mut dyn Read, n: u64) -> io::Result<u64> {
        let mut left = n;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let free = self.buf.free(want);
            let want = free.len().min(want);
            let got = match from.read(&mut free[..want]) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.buf.len += got;
            left -= got as u64;
            if self.buf.is_full() {
                self.send()?;
            }
        }
        Ok(n - left)
    }
}

impl<T> Write for Chunks<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.buf.push(data);
        if self.buf.is_full() {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Where a [`Handoff`]'s writing thread puts the stream's blocks. A writer that can
/// keep a block until its bytes are on the disk takes it whole (the store's direct blob
/// file); any other writer copies the bytes out, as [`WriteBlocks::write_block`] does
/// unless a type says otherwise.
pub trait WriteBlocks: Write {
    /// Writes the bytes `block` holds; gives `done` every block this writer no longer
    /// needs (this one or earlier ones), to be filled again.
    fn write_block(&mut self, block: Block, done: &mut dyn FnMut(Block)) -> io::Result<()> {
        write_copied(self, block, done)
    }
}

/// Writes the bytes `block` holds to `out` (a copy), then gives the block to `done`: what
/// a writer that cannot keep blocks does with them.
pub fn write_copied<W: Write + ?Sized>(
    out: &mut W,
    block: Block,
    done: &mut dyn FnMut(Block),
) -> io::Result<()> {
    out.write_all(block.filled())?;
    done(block);
    Ok(())
}

impl WriteBlocks for Vec<u8> {}

/// The writing thread of a [`Handoff`]: writes each chunk to `inner` and gives the
/// emptied chunk `back`.
fn spawn_writer<W: WriteBlocks + Send + 'static>(
    mut inner: W,
    rx: Receiver<Block>,
    back: SyncSender<Block>,
) -> JoinHandle<io::Result<W>> {
    std::thread::spawn(move || {
        let mut done = |mut block: Block| {
            block.clear();
            let _ = back.try_send(block);
        };
        for block in rx {
            inner.write_block(block, &mut done)?;
        }
        inner.flush()?;
        Ok(inner)
    })
}

/// See the module's documentation: the caller makes the stream (a layer's tar, reading
/// every file), a second thread hashes it (sha256: the layer's diff ID), a third writes
/// it (for a layer, around the page cache: see the store's `blobfile`), each on a core
/// of its own. With the hashing on the caller's
/// thread, a 345 MB layer took 355 ms at the end of a build, two thirds of it hashing.
/// The same blocks go from one thread to the next and back: a file's bytes are read
/// into them ([`Handoff::fill_from`]) and leave them for the disk.
/// [`Handoff::finish`] returns the inner writer and the digest.
pub struct Handoff<W: WriteBlocks + Send + 'static> {
    chunks: Chunks<Block>,
    hasher: Option<JoinHandle<(Sha256, u64)>>,
    writer: Option<JoinHandle<io::Result<W>>>,
}

impl<W: WriteBlocks + Send + 'static> Handoff<W> {
    /// Starts the hashing and the writing thread for `inner`.
    pub fn new(inner: W) -> Self {
        let (tx, rx) = sync_channel::<Block>(DEPTH);
        let (to_writer, for_writer) = sync_channel::<Block>(DEPTH);
        let (back, spare) = sync_channel::<Block>(2 * DEPTH + 2);
        let hasher = std::thread::spawn(move || {
            let (mut hasher, mut count) = (Sha256::new(), 0u64);
            for chunk in rx {
                hasher.update(chunk.filled());
                count += chunk.filled().len() as u64;
                if to_writer.send(chunk).is_err() {
                    // The writer stopped: its error is what `finish` reports.
                    break;
                }
            }
            (hasher, count)
        });
        let writer = spawn_writer(inner, for_writer, back);
        let chunks = Chunks::new(tx, Some(spare), |b| b);
        Handoff { chunks, hasher: Some(hasher), writer: Some(writer) }
    }

    /// See [`Chunks::fill_from`].
    pub fn fill_from(&mut self, from: &mut dyn Read, n: u64) -> io::Result<u64> {
        self.chunks.fill_from(from, n)
    }

    /// Writes what is left, waits for both threads, and returns the inner writer, the
    /// digest of every byte written and their count (or the first error the writing
    /// thread met).
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        let sent = self.chunks.send();
        self.chunks.tx.take();
        let panicked = || io::Error::other("a thread of the stream panicked");
        let hashed = self.hasher.take().map(|h| h.join().map_err(|_| panicked()));
        let written = match self.writer.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(panicked())),
            None => Err(io::Error::other("the writing thread is gone")),
        };
        let inner = written?;
        sent?;
        let (hasher, count) =
            hashed.ok_or_else(|| io::Error::other("the hashing thread is gone"))??;
        Ok((inner, crate::digest::from_hasher(hasher), count))
    }
}

impl<W: WriteBlocks + Send + 'static> Write for Handoff<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.chunks.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go when full, the last one with `finish`.
        Ok(())
    }
}

impl<W: WriteBlocks + Send + 'static> Drop for Handoff<W> {
    fn drop(&mut self) {
        // Unfinished (an error on the way): end the threads without waiting for them.
        self.chunks.tx.take();
    }
}

/// The reading end of a [`pipe`]: what the writing end sends, until it is dropped.
pub struct PipeReader {
    rx: Receiver<io::Result<Block>>,
    chunk: Option<Block>,
    at: usize,
    /// Read blocks back to the writer, which fills them again (a new block costs the
    /// zeroing of its pages).
    back: SyncSender<Block>,
}

/// A pipe between threads: bytes written to the first end (in chunks, at most a few MiB
/// in flight) are read from the second; the reader sees the end when the writer is
/// dropped, and an error the writer's owner sends with [`Produced::fail`].
pub fn pipe() -> (Produced, PipeReader) {
    let (tx, rx) = sync_channel(DEPTH);
    let (back, spare) = sync_channel(DEPTH + 2);
    (Chunks::new(tx, Some(spare), Ok), PipeReader { rx, chunk: None, at: 0, back })
}

impl Produced {
    /// Ends the stream with an error, which the reader gets where it breaks off.
    pub fn fail(&mut self, e: &io::Error) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
        }
    }
}

impl io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let left = &chunk.filled()[self.at..];
                if !left.is_empty() {
                    let n = buf.len().min(left.len());
                    buf[..n].copy_from_slice(&left[..n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    if let Some(mut read) = self.chunk.replace(chunk) {
                        read.clear();
                        let _ = self.back.try_send(read);
                    }
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The writer is gone.
                Err(_) => return Ok(0),
            }
        }
    }
}

/// A reader of what a producer, running on a thread of its own, writes; see the module's
/// documentation. [`ReadAhead::finish`] returns the producer's result.
pub struct ReadAhead<T: Send + 'static> {
    reader: PipeReader,
    thread: Option<JoinHandle<io::Result<T>>>,
}

/// What a [`ReadAhead`]'s producer writes to.
pub type Produced = Chunks<io::Result<Block>>;

impl<T: Send + 'static> ReadAhead<T> {
    /// Starts `produce` on a thread; what it writes is read from the returned reader.
    pub fn spawn(produce: impl FnOnce(&mut Produced) -> io::Result<T> + Send + 'static) -> Self {
        let (mut out, reader) = pipe();
        let thread = std::thread::spawn(move || {
            let result = produce(&mut out).and_then(|t| out.send().map(|()| t));
            if let Err(e) = &result {
                out.fail(e);
            }
            result
        });
        ReadAhead { reader, thread: Some(thread) }
    }

    /// Lets the producer run to its end (what it still writes is dropped) and returns
    /// its result.
    pub fn finish(mut self) -> io::Result<T> {
        while self.reader.rx.recv().is_ok() {}
        match self.thread.take() {
            Some(t) => {
                t.join().unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")))
            }
            None => Err(io::Error::other("the reading thread is gone")),
        }
    }
}

impl<T: Send + 'static> io::Read for ReadAhead<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_zeroed_only_as_far_as_it_is_filled_and_stays_aligned() -> io::Result<()> {
        let size = 4 << 20;
        let mut b = Block::new(size);
        let aligned = |b: &Block| (b.buf.as_ptr() as usize + b.start).is_multiple_of(Block::ALIGN);
        assert!(aligned(&b));
        assert_eq!(b.push(b"small layer"), 11);
        assert!(b.buf.len() < size / 8, "zeroed {} of {size} bytes for 11", b.buf.len());
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let mut chunks = Chunks::new(sync_channel(8).0, None, |b| b);
        let mut from: &[u8] = &data[..3 * Block::ZEROED_STEP + 5];
        assert_eq!(chunks.fill_from(&mut from, u64::MAX)?, 3 * Block::ZEROED_STEP as u64 + 5);
        assert_eq!(chunks.buf.filled(), &data[..3 * Block::ZEROED_STEP + 5]);
        // Filled to the end, a piece at a time: every byte where it was put, and the
        // buffer never moved.
        let mut n = b.len;
        while !b.is_full() {
            n += b.push(&data[n % 1000..n % 1000 + 70_000]);
        }
        assert_eq!(n, size);
        assert_eq!(&b.filled()[..11], b"small layer");
        assert_eq!(&b.filled()[11..11 + 70_000], &data[11..70_011]);
        assert!(aligned(&b));
        assert_eq!(b.buf.len(), b.start + size);
        Ok(())
    }

    #[test]
    fn every_byte_arrives_in_order() -> io::Result<()> {
        let mut w = Handoff::new(Vec::new());
        let mut expected = Vec::new();
        for i in 0..3000u32 {
            let piece = vec![(i % 251) as u8; (i as usize * 37) % 5000];
            w.write_all(&piece)?;
            expected.extend_from_slice(&piece);
        }
        let (written, digest, count) = w.finish()?;
        assert_eq!(written, expected);
        assert_eq!(digest, crate::digest::sha256(&expected));
        assert_eq!(count, expected.len() as u64);
        Ok(())
    }

    /// Bytes read straight into the blocks, across their boundaries, between written
    /// ones, arrive in order; a reader that ends early gives what it had.
    #[test]
    fn bytes_filled_from_a_reader_arrive_in_order() -> io::Result<()> {
        let mut w = Handoff::new(Vec::new());
        let data: Vec<u8> = (0..3 * CHUNK + 777).map(|i| (i % 241) as u8).collect();
        w.write_all(b"head")?;
        assert_eq!(w.fill_from(&mut &data[..], data.len() as u64)?, data.len() as u64);
        assert_eq!(w.fill_from(&mut &b"short"[..], 100)?, 5);
        w.write_all(b"tail")?;
        let (written, digest, _) = w.finish()?;
        let expected = [&b"head"[..], &data, b"short", b"tail"].concat();
        assert!(written == expected, "{} bytes, {} expected", written.len(), expected.len());
        assert_eq!(digest, crate::digest::sha256(&expected));
        Ok(())
    }

    /// A writer that fails after some bytes.
    struct Failing(usize);

    impl Write for Failing {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.0 < data.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl WriteBlocks for Failing {}

    #[test]
    fn read_ahead_yields_every_byte_and_the_producers_result() -> io::Result<()> {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let copy = data.clone();
        let mut r = ReadAhead::spawn(move |out| {
            for piece in copy.chunks(7777) {
                out.write_all(piece)?;
            }
            Ok(copy.len())
        });
        let mut got = Vec::new();
        io::Read::read_to_end(&mut r, &mut got)?;
        assert_eq!(got, data);
        assert_eq!(r.finish()?, data.len());
        // A reader that stops early still gets the producer's result.
        let mut r = ReadAhead::spawn(|out| {
            for _ in 0..50 {
                out.write_all(&[1u8; 100_000])?;
            }
            Ok("done")
        });
        let mut first = [0u8; 10];
        io::Read::read_exact(&mut r, &mut first)?;
        assert_eq!(r.finish()?, "done");
        // A failing producer: the reader sees the error where the stream breaks off.
        let mut r = ReadAhead::spawn(|out| -> io::Result<()> {
            out.write_all(&[0u8; 10])?;
            Err(io::Error::other("corrupt input"))
        });
        let mut all = Vec::new();
        let read = io::Read::read_to_end(&mut r, &mut all).map_err(|e| e.to_string());
        assert_eq!(read, Err("corrupt input".to_string()));
        assert_eq!(r.finish().map_err(|e| e.to_string()), Err("corrupt input".to_string()));
        Ok(())
    }

    #[test]
    fn the_threads_error_is_returned() {
        let mut w = Handoff::new(Failing(3 * CHUNK));
        let big = vec![0u8; CHUNK];
        // Writes may or may not see the failure, depending on timing; finish always does.
        for _ in 0..20 {
            if w.write_all(&big).is_err() {
                break;
            }
        }
        let err = w.finish().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("disk full"));
    }
}
