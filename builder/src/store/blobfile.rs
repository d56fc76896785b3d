//! The file under a blob being written: through the page cache, its writing-out started
//! as it grows ([`Writeback`]), or around the page cache ([`Direct`], for a layer the
//! build has just made: its bytes are read again only to push or save it).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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

/// A file opened with `O_DIRECT`: whole, aligned blocks go from buffers of this writer
/// straight to the disk, two at a time from two threads (this disk takes 1.4 GB/s from
/// one writer, 1.9 from two), the tail (less than a block) through the page cache at the
/// end. Through the page cache, a layer cost a copy into fresh pages (on two cores, where
/// the tar, its hash and the write each want one, that copy was on the layer's critical
/// path, and more so once the page cache is full and every new page is reclaimed first:
/// a 114 MB layer took 110-150 ms then), and the sync that makes the blob durable waited
/// for the page cache's writing-out, which reaches 0.7 GB/s here.
///
/// No crate offers this (a writer that stages aligned blocks for a few writing threads
/// and hands the tail to the page cache); the alignment is found in a plain `Vec`,
/// without `unsafe`.
#[derive(Debug)]
pub(super) struct Direct {
    file: std::sync::Arc<File>,
    /// The block being filled, and how much of it is.
    block: Block,
    len: usize,
    /// Where the block goes in the file.
    offset: u64,
    /// Full blocks to the writing threads, and emptied ones back (or the first error).
    to_write: Option<std::sync::mpsc::SyncSender<(Block, u64)>>,
    written: std::sync::mpsc::Receiver<io::Result<Block>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Blocks handed out and not yet back.
    out: usize,
}

/// A buffer with `Direct::BLOCK` bytes starting at an address aligned to `Direct::ALIGN`.
#[derive(Debug)]
struct Block {
    buf: Vec<u8>,
    start: usize,
}

impl Block {
    fn new() -> Self {
        let buf = vec![0u8; Direct::BLOCK + Direct::ALIGN];
        // For bytes, `align_offset` always finds an offset below ALIGN (the `min` only
        // keeps the slices below in bounds were it ever not to).
        let start = buf.as_ptr().align_offset(Direct::ALIGN).min(Direct::ALIGN);
        Block { buf, start }
    }

    fn bytes(&self, n: usize) -> &[u8] {
        &self.buf[self.start..self.start + n]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + Direct::BLOCK]
    }
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

impl Direct {
    /// The alignment of buffers, offsets and lengths: the largest logical block size of
    /// common devices (4 KiB; most take 512 bytes).
    const ALIGN: usize = 4096;
    /// Bytes per direct write.
    const BLOCK: usize = 4 << 20;
    /// Writing threads (so writes in flight).
    const THREADS: usize = 2;

    fn new(file: File) -> Self {
        let file = std::sync::Arc::new(file);
        let (to_write, blocks) = std::sync::mpsc::sync_channel::<(Block, u64)>(0);
        let blocks = std::sync::Arc::new(std::sync::Mutex::new(blocks));
        let (back, written) = std::sync::mpsc::channel();
        let threads = (0..Self::THREADS)
            .filter_map(|_| {
                let (file, blocks, back) = (file.clone(), blocks.clone(), back.clone());
                let write = move || loop {
                    let next = match blocks.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((block, offset)) = next else { return };
                    let done = write_block(&file, block.bytes(Self::BLOCK), offset).map(|()| block);
                    if back.send(done).is_err() {
                        return;
                    }
                };
                std::thread::Builder::new().name("blob-writer".into()).spawn(write).ok()
            })
            .collect::<Vec<_>>();
        Direct {
            file,
            block: Block::new(),
            len: 0,
            offset: 0,
            // No thread (none could start): blocks are written here.
            to_write: (!threads.is_empty()).then_some(to_write),
            written,
            threads,
            out: 0,
        }
    }

    /// Hands the full block to a writing thread (or writes it here without one), and
    /// takes an emptied block in its place.
    fn send_block(&mut self) -> io::Result<()> {
        let offset = self.offset;
        self.offset += Self::BLOCK as u64;
        self.len = 0;
        if self.to_write.is_none() {
            return write_block(&self.file, self.block.bytes(Self::BLOCK), offset);
        }
        // A new block while fewer than two are out, else the first one back.
        let next = if self.out < Self::THREADS { Block::new() } else { self.take_back()? };
        let full = std::mem::replace(&mut self.block, next);
        let ended = || io::Error::other("the blob's writing threads ended");
        self.to_write.as_ref().ok_or_else(ended)?.send((full, offset)).map_err(|_| ended())?;
        self.out += 1;
        Ok(())
    }

    /// Waits for a block to come back from a writing thread (or its error).
    fn take_back(&mut self) -> io::Result<Block> {
        let block = self
            .written
            .recv()
            .map_err(|_| io::Error::other("the blob's writing threads ended"))??;
        self.out -= 1;
        Ok(block)
    }

    /// Waits for the blocks in flight, writes the staged bytes (the whole blocks
    /// directly, the tail through the page cache) and returns the file.
    fn finish(mut self) -> io::Result<File> {
        while self.out > 0 {
            self.take_back()?;
        }
        self.to_write = None;
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        let whole = self.len - self.len % Self::ALIGN;
        if whole > 0 {
            write_block(&self.file, self.block.bytes(whole), self.offset)?;
        }
        if self.len > whole {
            clear_direct(&self.file)?;
            let tail = &self.block.bytes(self.len)[whole..];
            write_block(&self.file, tail, self.offset + whole as u64)?;
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
        let n = data.len().min(Self::BLOCK - self.len);
        self.block.bytes_mut()[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == Self::BLOCK {
            self.send_block()?;
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
        for len in [0, 1, 4095, 4096, 4097, Direct::BLOCK - 1, Direct::BLOCK, Direct::BLOCK + 5000]
        {
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
        let data: Vec<u8> = (0..Direct::ALIGN + 1).map(|i| (i % 253) as u8).collect();
        let mut staged = Block::new();
        staged.bytes_mut()[..data.len()].copy_from_slice(&data);
        // One byte into the aligned buffer: no longer aligned, and 4096 bytes long.
        let unaligned = &staged.bytes(data.len())[1..];
        write_block(&file, unaligned, 0).unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), &data[1..]);
    }
}
