//! A writer that hands its bytes, in large chunks, to another thread that writes them:
//! the caller's work on the stream (making a tar and hashing it) and the copy into the
//! page cache run on two cores instead of one.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes collected before a chunk goes to the writing thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight at most (so at most this many MiB are held in memory).
const DEPTH: usize = 4;

/// See the module's documentation. [`Handoff::finish`] returns the inner writer.
pub struct Handoff<W: Write + Send + 'static> {
    tx: Option<SyncSender<Vec<u8>>>,
    /// Emptied chunks coming back, so the stream reuses a few buffers.
    spare: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> Handoff<W> {
    /// Starts the writing thread for `inner`.
    pub fn new(mut inner: W) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (back, spare) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let thread = std::thread::spawn(move || {
            for mut chunk in rx {
                inner.write_all(&chunk)?;
                chunk.clear();
                let _ = back.try_send(chunk);
            }
            inner.flush()?;
            Ok(inner)
        });
        Handoff { tx: Some(tx), spare, buf: Vec::with_capacity(CHUNK), thread: Some(thread) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(full).is_ok()).unwrap_or(false);
        if sent {
            Ok(())
        } else {
            // The writing thread stopped: its error is returned by `finish`.
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "the writing thread stopped"))
        }
    }

    /// Writes what is left, waits for the thread, and returns the inner writer (or the
    /// first error the thread met).
    pub fn finish(mut self) -> io::Result<W> {
        let sent = self.send();
        self.tx.take();
        let joined = match self.thread.take() {
            Some(t) => {
                t.join().unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")))
            }
            None => Err(io::Error::other("the writing thread is gone")),
        };
        let inner = joined?;
        sent.map(|()| inner)
    }
}

impl<W: Write + Send + 'static> Write for Handoff<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for Handoff<W> {
    fn drop(&mut self) {
        // Unfinished (an error on the way): end the thread without waiting for it.
        self.tx.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_order() -> io::Result<()> {
        let mut w = Handoff::new(Vec::new());
        let mut expected = Vec::new();
        for i in 0..3000u32 {
            let piece = vec![(i % 251) as u8; (i as usize * 37) % 5000];
            w.write_all(&piece)?;
            expected.extend_from_slice(&piece);
        }
        assert_eq!(w.finish()?, expected);
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
