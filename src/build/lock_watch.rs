//! Telling waiting from building: cargo prints `Blocking waiting for file lock on <what>` when
//! another cargo holds a lock it needs (the shared target dir, the package cache), and its next
//! line once it has the lock. The build's log is read as it grows (the commands write to it
//! directly, so nothing is reordered or lost if tbuild is slow), and the time between the two
//! lines is the wait.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// How often the log is read while a command runs.
const POLL: Duration = Duration::from_millis(200);

/// The line cargo prints before it blocks on a lock.
const BLOCKING: &str = "Blocking waiting for file lock";

pub struct LockWatch<'a> {
    log: PathBuf,
    /// Bytes of the log already read.
    offset: u64,
    /// The start of an unfinished last line.
    partial: Vec<u8>,
    waiting_since: Option<Instant>,
    waited: Duration,
    on_change: &'a (dyn Fn(bool) + Send + Sync),
}

impl<'a> LockWatch<'a> {
    pub fn new(log: &Path, on_change: &'a (dyn Fn(bool) + Send + Sync)) -> LockWatch<'a> {
        LockWatch {
            log: log.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            waiting_since: None,
            waited: Duration::ZERO,
            on_change,
        }
    }

    /// Waits for `child` to exit, reading the log as it grows.
    pub async fn until_exit(&mut self, child: &mut tokio::process::Child) -> std::io::Result<ExitStatus> {
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                status = child.wait() => {
                    self.read_new();
                    self.stop_waiting();
                    return status;
                }
                _ = tick.tick() => self.read_new(),
            }
        }
    }

    /// The total time spent waiting for locks so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Reads what the log gained since the last call and follows cargo's lock lines in it.
    /// A log that cannot be read only costs the display its waiting phase.
    fn read_new(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.log) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else { return };
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&String::from_utf8_lossy(&line));
        }
    }

    fn line(&mut self, line: &str) {
        // Any line after the blocking one means cargo got the lock (and may block again).
        self.stop_waiting();
        if line.contains(BLOCKING) {
            self.waiting_since = Some(Instant::now());
            (self.on_change)(true);
        }
    }

    fn stop_waiting(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
            (self.on_change)(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    #[test]
    fn a_blocking_line_starts_a_wait_and_the_next_line_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut file = std::fs::File::create(&log).unwrap();
        let events = Mutex::new(Vec::new());
        let record = |waiting: bool| events.lock().unwrap().push(waiting);
        let mut watch = LockWatch::new(&log, &record);
        write!(file, "$ cargo build\n    Blocking waiting for file lock on build dire").unwrap();
        watch.read_new();
        assert!(events.lock().unwrap().is_empty(), "half a line is not a line yet");
        writeln!(file, "ctory").unwrap();
        watch.read_new();
        assert_eq!(*events.lock().unwrap(), [true]);
        std::thread::sleep(Duration::from_millis(20));
        writeln!(file, "   Compiling a v0.1.0").unwrap();
        watch.read_new();
        assert_eq!(*events.lock().unwrap(), [true, false]);
        assert!(watch.waited() >= Duration::from_millis(20), "{:?}", watch.waited());
        writeln!(file, "   Compiling b v0.1.0").unwrap();
        watch.read_new();
        assert_eq!(*events.lock().unwrap(), [true, false], "other lines change nothing");
    }
}
