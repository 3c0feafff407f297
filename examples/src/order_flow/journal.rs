//! [`Journal`]: an append-only file of JSON lines, the example's durable stand-in for the
//! service's database, so that a run kept in a state directory survives `kill -9` and resumes.
//!
//! Each entry is one line, written with a single `write` before the in-memory state it describes
//! changes. A line that reached the kernel survives the process being killed (it is in the page
//! cache); it is not fsynced, so a power cut may lose the last entries (the trade-off of SQLite's
//! `synchronous = NORMAL`). A process killed in the middle of a write leaves at most one line cut
//! short at the end of the file: [`Journal::open`] drops it, since the change it described never
//! took effect in the process that was writing it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use integrations_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An append-only journal of `T`s in one file, one JSON object per line.
pub struct Journal<T> {
    path: PathBuf,
    file: Mutex<File>,
    _entries: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for Journal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::unavailable(format!("cannot {what} {}: {e}", path.display())).with_source(e)
}

/// The complete lines of `bytes` (those ending in `\n`) parsed as `T`, and the length of that
/// complete prefix.
///
/// # Errors
/// [`Error::Configuration`] naming `state_dir` for a complete line that is not a `T`.
fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<(Vec<T>, usize)> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut entries = Vec::new();
    for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = serde_json::from_slice(line).map_err(|e| {
            Error::configuration(
                "state_dir",
                format!(
                    "{} line {}: not a journal entry: {e}",
                    path.display(),
                    n + 1
                ),
            )
            .with_source(e)
        })?;
        entries.push(entry);
    }
    Ok((entries, complete))
}

/// Reads the entries of the journal at `path` without opening it for writing; a missing file has
/// none, and a last line cut short (being written, or left by a killed process) is skipped.
///
/// # Errors
/// [`Error::Unavailable`] if the file cannot be read; [`Error::Configuration`] naming
/// `state_dir` for a complete line that is not a `T`.
pub fn read_entries<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut entries = Vec::new();
    for_each_entry(path, |e| entries.push(e))?;
    Ok(entries)
}

/// Calls `f` with each entry of the journal at `path`, oldest first, one line in memory at a
/// time (an audit of a long run reads a file of hundreds of thousands of lines); a missing file
/// has none, and a last line cut short is skipped.
///
/// # Errors
/// As [`read_entries`].
pub fn for_each_entry<T: DeserializeOwned>(path: &Path, mut f: impl FnMut(T)) -> Result<()> {
    use std::io::BufRead as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path, "read", e)),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error(path, "read", e))?;
        // The end, or a last line still being written (no newline yet).
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = serde_json::from_slice(&line).map_err(|e| {
            Error::configuration(
                "state_dir",
                format!("{} line {n}: not a journal entry: {e}", path.display()),
            )
            .with_source(e)
        })?;
        f(entry);
    }
    Ok(())
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    /// Opens the journal at `path`, creating it if needed, and returns it with the entries written
    /// before, oldest first. A last line cut short is removed from the file.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the file cannot be opened, read or trimmed;
    /// [`Error::Configuration`] naming `state_dir` for a complete line that is not a `T`.
    pub fn open(path: impl Into<PathBuf>) -> Result<(Self, Vec<T>)> {
        let path = path.into();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(&path, "read", e))?;
        let (entries, complete) = parse(&path, &bytes)?;
        if complete < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                bytes = bytes.len() - complete,
                "dropping a journal line cut short by a crash"
            );
            file.set_len(complete as u64)
                .map_err(|e| io_error(&path, "trim", e))?;
        }
        let journal = Journal {
            path,
            file: Mutex::new(file),
            _entries: PhantomData,
        };
        Ok((journal, entries))
    }

    /// Creates the journal at `path`, empty (truncating a file there).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the file cannot be created.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        File::create(&path).map_err(|e| io_error(&path, "create", e))?;
        Journal::open(path).map(|(journal, _)| journal)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` as one line, in one write.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the entry cannot be encoded or written.
    pub fn append(&self, entry: &T) -> Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(|e| {
            Error::unavailable(format!("cannot encode a journal entry: {e}")).with_source(e)
        })?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&line)
            .map_err(|e| io_error(&self.path, "write", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Entry {
        n: u32,
        text: String,
    }

    fn entry(n: u32) -> Entry {
        Entry {
            n,
            text: format!("line \"{n}\"\nwith a newline"),
        }
    }

    #[test]
    fn entries_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, before) = Journal::<Entry>::open(&path).unwrap();
        assert!(before.is_empty());
        j.append(&entry(1)).unwrap();
        j.append(&entry(2)).unwrap();
        drop(j);
        let (j, before) = Journal::<Entry>::open(&path).unwrap();
        assert_eq!(before, [entry(1), entry(2)]);
        j.append(&entry(3)).unwrap();
        assert_eq!(read_entries::<Entry>(&path).unwrap().len(), 3);
        let fresh = Journal::<Entry>::create(&path).unwrap();
        assert_eq!(fresh.path(), path);
        assert!(read_entries::<Entry>(&path).unwrap().is_empty());
    }

    #[test]
    fn a_line_cut_short_is_dropped_and_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (j, _) = Journal::<Entry>::open(&path).unwrap();
        j.append(&entry(1)).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"n":2,"te"#).unwrap();
        drop(f);
        assert_eq!(read_entries::<Entry>(&path).unwrap(), [entry(1)]);
        let (j, before) = Journal::<Entry>::open(&path).unwrap();
        assert_eq!(before, [entry(1)]);
        j.append(&entry(3)).unwrap();
        assert_eq!(read_entries::<Entry>(&path).unwrap(), [entry(1), entry(3)]);
    }

    #[test]
    fn a_corrupt_line_is_an_error_naming_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "{\"n\":1,\"text\":\"a\"}\nnot json\n").unwrap();
        let e = Journal::<Entry>::open(&path).unwrap_err();
        assert_eq!(e.field(), Some("state_dir"));
        assert!(e.to_string().contains("line 2"), "{e}");
        // Read back one line at a time: the same error, and the good line seen before it.
        let mut seen = Vec::new();
        let e = for_each_entry::<Entry>(&path, |entry| seen.push(entry.n)).unwrap_err();
        assert_eq!(e.field(), Some("state_dir"));
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(seen, [1]);
        assert!(
            read_entries::<Entry>(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
