//! The file under a blob being written: through the page cache, its writing-out started
//! as it grows ([`Writeback`]), or around the page cache ([`Direct`], for a layer the
//! build has just made: its bytes are read again only to push or save it).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::handoff::Block;

/// Where a blob's bytes go.
#[derive(Debug)]
pub(super) enum BlobFile {
    Buffered(io::BufWriter<Writeback>),
    Direct(Direct),
}

impl BlobFile {
    /// Through the page cache.
    pub(super) fn buffered(file: File) -> Self {
        BlobFile::Buffered(io::BufWriter::with_capacity(1 << 20, Writeback::new(file)))
    }

    /// Around the page cache (`O_DIRECT`); an error when the file system refuses it.
    pub(super) fn direct(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(path)?;
        Ok(BlobFile::Direct(Direct::new(file)))
    }

    /// See [`crate::handoff::WriteBlocks`]: a direct file takes the block whole.
    pub(super) fn write_block(
        &mut self,
        block: Block,
        done: &mut dyn FnMut(Block),
    ) -> io::Result<()> {
        match self {
            BlobFile::Direct(d) => d.write_block(block, done),
            BlobFile::Buffered(b) => crate::handoff::write_copied(b, block, done),
        }
    }

    /// Writes what is held back and returns the file.
    pub(super) fn into_file(self) -> io::Result<File> {
        match self {
            BlobFile::Buffered(b) => Ok(b.into_inner().map_err(|e| e.into_error())?.file),
            BlobFile::Direct(d) => d.finish(),
        }
    }
}

impl Write for BlobFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlobFile::Buffered(b) => b.write(buf),
            BlobFile::Direct(d) => d.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlobFile::Buffered(b) => b.flush(),
            // Held back until `finish`: only whole blocks go out before it.
            BlobFile::Direct(_) => Ok(()),
        }
    }
}

/// A blob's file that has the kernel start writing what it holds to the disk every
/// [`Writeback::EVERY`] bytes, so the sync that makes the blob durable when it is whole
/// waits for the last bytes only, not for all of them (a 100 MB layer's sync took 60 ms
/// at the end of a build, on its critical path).
#[derive(Debug)]
pub(super) struct Writeback {
    file: File,
    /// Bytes written, and bytes whose writing-out has been started.
    written: u64,
    started: u64,
}

impl Writeback {
    const EVERY: u64 = 8 << 20;

    fn new(file: File) -> Self {
        Writeback { file, written: 0, started: 0 }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= Self::EVERY {
            // Only a hint: its failure changes nothing (the final sync writes everything).
            let _ = crate::sandbox::start_writeback(
                &self.file,
                self.started,
                self.written - self.started,
            );
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A file opened with `O_DIRECT`: whole, aligned blocks go from buffers straight to the
/// disk, two writes at a time from two threads (this disk takes 1.4 GB/s from one
/// writer, 1.9 from two), the tail (less than [`Block::ALIGN`]) through the page cache
/// at the end. Through the page cache, a layer cost a copy into fresh pages (on two
/// cores, where the tar, its hash and the write each want one, that copy was on the
/// layer's critical path, and more so once the page cache is full and every new page is
/// reclaimed first: a 114 MB layer took 110-150 ms then), and the sync that makes the
/// blob durable waited for the page cache's writing-out, which reaches 0.7 GB/s here.
///
/// A [`Handoff`](crate::handoff::Handoff)'s blocks are taken whole
/// ([`Direct::write_block`]): [`Direct::BATCH`] bytes of them go in one `pwritev` and come
/// back to the stream once written, so a layer's bytes are never copied between the
/// file they were read from and the disk. Bytes written otherwise are staged in a block
/// of this writer's.
///
/// No crate offers this (a writer that gathers aligned blocks for a few writing threads
/// and hands the tail to the page cache); the alignment is found in a plain `Vec`,
/// without `unsafe`.
#[derive(Debug)]
pub(super) struct Direct {
    file: std::sync::Arc<File>,
    /// Bytes written through `Write`, not yet sent.
    staged: Block,
    /// Whole blocks taken from a stream, not yet sent, and their length.
    batch: Vec<Block>,
    batch_len: usize,
    /// Where the next bytes go in the file.
    offset: u64,
    /// Blocks to the writing threads, and written ones back (or the first error).
    to_write: Option<std::sync::mpsc::SyncSender<Job>>,
    written: std::sync::mpsc::Receiver<io::Result<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Writes handed out and not yet back.
    out: usize,
    /// Written blocks of a stream's, to give back to it; emptied staging blocks.
    returned: Vec<Block>,
    spare_staged: Vec<Block>,
}

/// Blocks to write one after the other from an offset, and whether they are staging
/// blocks (or a stream's).
#[derive(Debug)]
struct Job {
    blocks: Vec<Block>,
    offset: u64,
    staged: bool,
}

/// Writes `bytes` at `offset`; a direct write the device refuses (EINVAL: an alignment
/// it does not take; nothing was written) goes again through the page cache, and so does
/// everything after it.
fn write_block(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    match file.write_all_at(bytes, offset) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            clear_direct(file)?;
            file.write_all_at(bytes, offset)
        }
        other => other,
    }
}

/// Writes the blocks one after the other from `offset`, in one system call when the
/// device takes it; what a short or refused write left goes as [`write_block`] does.
fn write_blocks(file: &File, blocks: &[Block], offset: u64) -> io::Result<()> {
    let slices: Vec<io::IoSlice<'_>> =
        blocks.iter().map(|b| io::IoSlice::new(b.filled())).collect();
    let at = i64::try_from(offset).map_err(|_| io::Error::other("a blob past 8 EiB"))?;
    let done = match nix::sys::uio::pwritev(file, &slices, at) {
        Ok(n) => n,
        // Refused whole (nothing written): block by block below, which clears O_DIRECT
        // (and, interrupted, tries again).
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EINTR) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut start = 0;
    for block in blocks {
        let bytes = block.filled();
        let end = start + bytes.len();
        if end > done {
            let skip = done.saturating_sub(start);
            write_block(file, &bytes[skip..], offset + (start + skip) as u64)?;
        }
        start = end;
    }
    Ok(())
}

impl Direct {
    /// Bytes per direct write.
    pub(super) const BATCH: usize = 4 << 20;
    /// Writing threads (so writes in flight).
    const THREADS: usize = 2;

    fn new(file: File) -> Self {
        let file = std::sync::Arc::new(file);
        let (to_write, jobs) = std::sync::mpsc::sync_channel::<Job>(0);
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        let (back, written) = std::sync::mpsc::channel();
        let threads = (0..Self::THREADS)
            .filter_map(|_| {
                let (file, jobs, back) = (file.clone(), jobs.clone(), back.clone());
                let write = move || loop {
                    let next = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else { return };
                    let done = write_blocks(&file, &job.blocks, job.offset).map(|()| job);
                    if back.send(done).is_err() {
                        return;
                    }
                };
                std::thread::Builder::new().name("blob-writer".into()).spawn(write).ok()
            })
            .collect::<Vec<_>>();
        Direct {
            file,
            staged: Block::new(Self::BATCH),
            batch: Vec::new(),
            batch_len: 0,
            offset: 0,
            // No thread (none could start): blocks are written here.
            to_write: (!threads.is_empty()).then_some(to_write),
            written,
            threads,
            out: 0,
            returned: Vec::new(),
            spare_staged: Vec::new(),
        }
    }

    /// Takes a stream's block whole when it can go to the disk as it is (full, of a
    /// size the alignment divides, with nothing staged before it), else copies its
    /// bytes; `done` gets the blocks written since the last call.
    pub(super) fn write_block(
        &mut self,
        block: Block,
        done: &mut dyn FnMut(Block),
    ) -> io::Result<()> {
        let whole = block.is_full() && block.size().is_multiple_of(Block::ALIGN);
        if whole && self.staged.filled().is_empty() {
            self.batch_len += block.size();
            self.batch.push(block);
            if self.batch_len >= Self::BATCH {
                self.send_batch()?;
            }
        } else {
            self.write_all(block.filled())?;
            done(block);
        }
        // Writes that came back meanwhile free their blocks now.
        while let Ok(job) = self.written.try_recv() {
            self.out -= 1;
            self.sort_back(job?);
        }
        for block in self.returned.drain(..) {
            done(block);
        }
        Ok(())
    }

    /// Sends the blocks taken so far to a writing thread (or writes them here without
    /// one).
    fn send_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let blocks = std::mem::take(&mut self.batch);
        let len = std::mem::take(&mut self.batch_len);
        self.send(Job { blocks, offset: self.offset, staged: false }, len)
    }

    /// Sends the staged block, full, to a writing thread and stages into an emptied one.
    fn send_staged(&mut self) -> io::Result<()> {
        let next = match self.spare_staged.pop() {
            Some(block) => block,
            None if self.out < Self::THREADS => Block::new(Self::BATCH),
            None => {
                self.take_back()?;
                self.spare_staged.pop().unwrap_or_else(|| Block::new(Self::BATCH))
            }
        };
        let full = std::mem::replace(&mut self.staged, next);
        let len = full.filled().len();
        self.send(Job { blocks: vec![full], offset: self.offset, staged: true }, len)
    }

    /// Hands `job` (`len` bytes from the next offset) to a writing thread once fewer
    /// than [`Direct::THREADS`] writes are out.
    fn send(&mut self, job: Job, len: usize) -> io::Result<()> {
        self.offset += len as u64;
        let Some(to_write) = self.to_write.clone() else {
            write_blocks(&self.file, &job.blocks, job.offset)?;
            self.sort_back(job);
            return Ok(());
        };
        while self.out >= Self::THREADS {
            self.take_back()?;
        }
        let ended = || io::Error::other("the blob's writing threads ended");
        to_write.send(job).map_err(|_| ended())?;
        self.out += 1;
        Ok(())
    }

    /// Waits for a write to come back from a writing thread (or its error).
    fn take_back(&mut self) -> io::Result<()> {
        let job = self
            .written
            .recv()
            .map_err(|_| io::Error::other("the blob's writing threads ended"))??;
        self.out -= 1;
        self.sort_back(job);
        Ok(())
    }

    /// Keeps a written job's blocks: staging blocks for staging, a stream's to give back.
    fn sort_back(&mut self, job: Job) {
        for mut block in job.blocks {
            block.clear();
            if job.staged {
                self.spare_staged.push(block);
            } else {
                self.returned.push(block);
            }
        }
    }

    /// Waits for the writes in flight, writes the staged bytes (the whole part
    /// directly, the tail through the page cache) and returns the file.
    fn finish(mut self) -> io::Result<File> {
        self.send_batch()?;
        while self.out > 0 {
            self.take_back()?;
        }
        self.to_write = None;
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        let staged = self.staged.filled();
        let whole = staged.len() - staged.len() % Block::ALIGN;
        if whole > 0 {
            write_block(&self.file, &staged[..whole], self.offset)?;
        }
        if staged.len() > whole {
            clear_direct(&self.file)?;
            write_block(&self.file, &staged[whole..], self.offset + whole as u64)?;
        }
        let file = std::sync::Arc::try_unwrap(self.file)
            .map_err(|_| io::Error::other("the blob's writing threads still hold its file"))?;
        Ok(file)
    }
}

/// Clears `O_DIRECT` on `file`: what follows goes through the page cache.
fn clear_direct(file: &File) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(file, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_DIRECT;
    fcntl(file, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

impl Write for Direct {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Blocks taken before these bytes go first.
        self.send_batch()?;
        let n = self.staged.push(data);
        if self.staged.is_full() {
            self.send_staged()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of every length around the block and alignment boundaries come out whole,
    /// written in pieces of odd sizes, whether the file system takes O_DIRECT or not.
    #[test]
    fn a_direct_file_holds_exactly_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let batch = Direct::BATCH;
        for len in [0, 1, 4095, 4096, 4097, batch - 1, batch, batch + 5000, 2 * batch + 1] {
            let path = dir.path().join(format!("blob-{len}"));
            let file = File::create(&path).unwrap();
            let mut out = BlobFile::direct(&path).unwrap_or_else(|_| BlobFile::buffered(file));
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for piece in data.chunks(1000 + len % 3) {
                out.write_all(piece).unwrap();
            }
            out.flush().unwrap();
            drop(out.into_file().unwrap());
            assert_eq!(std::fs::read(&path).unwrap(), data, "{len} bytes");
        }
    }

    /// A direct write the device refuses (here: a buffer off the alignment) goes through
    /// the page cache instead, and the file says what was written.
    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&path)
            .expect("this test needs a file system that takes O_DIRECT for its temporary files");
        let data: Vec<u8> = (0..Block::ALIGN + 1).map(|i| (i % 253) as u8).collect();
        let mut staged = Block::new(2 * Block::ALIGN);
        staged.push(&data);
        // One byte into the aligned buffer: no longer aligned, and 4096 bytes long.
        let unaligned = &staged.filled()[1..];
        write_block(&file, unaligned, 0).unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), &data[1..]);
    }

    /// A stream's blocks taken whole (several batches of them), a partial block, bytes
    /// written, then a whole block again (copied: bytes are staged before it): the file
    /// holds them in that order, and the blocks written come back to be filled again.
    #[test]
    fn blocks_taken_whole_and_bytes_written_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let file = File::create(&path).unwrap();
        let mut out = BlobFile::direct(&path).unwrap_or_else(|_| BlobFile::buffered(file));
        let size = 1 << 20;
        let (mut expected, mut back) = (Vec::new(), 0usize);
        let mut block_of = |seed: usize, len: usize| {
            let mut b = Block::new(size);
            let bytes: Vec<u8> = (0..len).map(|i| ((i + seed) % 251) as u8).collect();
            b.push(&bytes);
            expected.extend_from_slice(&bytes);
            b
        };
        let mut blocks: Vec<Block> = (0..9).map(|i| block_of(i, size)).collect();
        blocks.push(block_of(9, 1000));
        let tail: Vec<u8> = (0..5000).map(|i| (i % 13) as u8).collect();
        let last = block_of(10, size);
        let mut done = |_: Block| back += 1;
        for b in blocks {
            out.write_block(b, &mut done).unwrap();
        }
        out.write_all(&tail).unwrap();
        out.write_block(last, &mut done).unwrap();
        drop(out.into_file().unwrap());
        let before_tail = 9 * size + 1000;
        let mut want = expected[..before_tail].to_vec();
        want.extend_from_slice(&tail);
        want.extend_from_slice(&expected[before_tail..]);
        assert_eq!(std::fs::read(&path).unwrap(), want);
        assert!(back >= 2, "the copied blocks come back at once ({back})");
    }
}
