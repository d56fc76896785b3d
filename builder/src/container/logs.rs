//! A container's log: `log.json` in its folder, one JSON object a line as Docker's
//! json-file driver writes them (`{"log":"text\n","stream":"stdout","time":"..."}`),
//! written by the supervisor's logger and read by `rbuild logs`.

use std::io::{BufRead, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::record;
use crate::error::{Error, Result};
use crate::store::Store;

/// The log's file name in the container's folder.
pub const LOG: &str = "log.json";

/// A line longer than this is written in pieces (Docker's logger cuts at 16 KiB too).
const MAX_LINE: usize = 16 * 1024;

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The text, with its newline when it had one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When it was written (RFC 3339, nanoseconds).
    pub time: String,
}

/// In the logger process: copies the two streams to the log, a record a line, until both
/// end. Errors end it quietly (nobody is left to tell).
pub(super) fn copy_streams(out: OwnedFd, err: OwnedFd, mut file: std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let fds = [out, err];
    while open.iter().any(|o| *o) {
        let mut polled: Vec<PollFd> = Vec::new();
        let mut which = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if open[i] {
                polled.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        match poll(&mut polled, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
        let ready: Vec<(usize, bool)> = polled
            .iter()
            .zip(&which)
            .map(|(p, i)| (*i, p.revents().is_some_and(|r| !r.is_empty())))
            .collect();
        for (i, is_ready) in ready {
            if !is_ready {
                continue;
            }
            let mut buf = [0u8; 8192];
            match nix::unistd::read(&fds[i], &mut buf) {
                Ok(0) | Err(_) => {
                    open[i] = false;
                    let rest = std::mem::take(&mut pending[i]);
                    write_line(&mut file, i, &rest);
                }
                Ok(n) => {
                    pending[i].extend_from_slice(&buf[..n]);
                    flush_lines(&mut file, i, &mut pending[i]);
                }
            }
        }
    }
}

fn flush_lines(file: &mut std::fs::File, stream: usize, pending: &mut Vec<u8>) {
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        write_line(file, stream, &line);
    }
    while pending.len() >= MAX_LINE {
        let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
        write_line(file, stream, &piece);
    }
}

fn write_line(file: &mut std::fs::File, stream: usize, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let line = Line {
        log: String::from_utf8_lossy(text).into_owned(),
        stream: if stream == 0 { "stdout" } else { "stderr" }.to_string(),
        time: crate::engine::now_rfc3339(None),
    };
    if let Ok(mut json) = serde_json::to_vec(&line) {
        json.push(b'\n');
        // One write a line, on a file opened to append: lines never interleave.
        let _ = file.write_all(&json);
    }
}

/// What `rbuild logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only the last N lines (before following).
    pub tail: Option<usize>,
    /// Only lines written at or after this time (RFC 3339, compared as text in UTC).
    pub since: Option<String>,
    /// Keep reading new lines until the container ends.
    pub follow: bool,
    /// Start at this offset of the log (see [`end`]) rather than at its beginning.
    pub from: Option<u64>,
}

/// Where the log ends now (its whole lines): what a start writes comes after it.
pub fn end(store: &Store, id: &str) -> u64 {
    let path = store.containers_dir().join(id).join(LOG);
    let text = std::fs::read(&path).unwrap_or_default();
    text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i as u64 + 1)
}

/// Unix seconds as RFC 3339 (UTC), the form of the log's times, for `--since`.
pub fn rfc3339_at(secs: u64) -> String {
    crate::engine::rfc3339(secs as i64, 0)
}

/// Reads a container's log and hands each line to `sink`, following it while the
/// container runs when asked. Stops when `sink` returns false.
pub fn read(
    store: &Store,
    what: &str,
    options: &LogOptions,
    mut sink: impl FnMut(&Line) -> bool,
) -> Result<()> {
    let rec = record::find(store, what)?;
    let path = rec.dir(store).join(LOG);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("opening", path.clone())(e)),
    };
    // Times compared to the second, as text: both are UTC in the same form.
    let second = |t: &str| t.get(..19).unwrap_or(t).to_string();
    let keep = |l: &Line| options.since.as_ref().is_none_or(|s| second(&l.time) >= second(s));
    let mut offset = options.from.unwrap_or(0);
    if let Some(f) = file.as_mut().filter(|_| options.from.is_none()) {
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(Error::io("reading", path.clone()))?;
        // Only whole lines: a line being written is read on the next round.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        offset = whole as u64;
        let lines: Vec<Line> = text[..whole]
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(keep)
            .collect();
        let skip = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
        for line in &lines[skip..] {
            if !sink(line) {
                return Ok(());
            }
        }
    }
    if !options.follow {
        return Ok(());
    }
    let mut last_round = false;
    loop {
        let running = record::running(store, &rec.id);
        if file.is_none() {
            file = std::fs::File::open(&path).ok();
        }
        if let Some(f) = file.as_mut() {
            f.seek(std::io::SeekFrom::Start(offset)).map_err(Error::io("reading", path.clone()))?;
            let mut reader = std::io::BufReader::new(&mut *f);
            let mut line = String::new();
            while reader.read_line(&mut line).map_err(Error::io("reading", path.clone()))? > 0 {
                if !line.ends_with('\n') {
                    break;
                }
                offset += line.len() as u64;
                if let Ok(parsed) = serde_json::from_str::<Line>(&line) {
                    if keep(&parsed) && !sink(&parsed) {
                        return Ok(());
                    }
                }
                line.clear();
            }
        }
        if last_round {
            return Ok(());
        }
        // Once the container has ended, one more round for what its logger wrote last.
        last_round = !running;
        std::thread::sleep(Duration::from_millis(if running { 100 } else { 300 }));
    }
}
