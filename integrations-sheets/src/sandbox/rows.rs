//! A sheet's rows, the oldest written to a file past a resident limit
//! ([`SandboxBuilder::resident_rows`](super::SandboxBuilder::resident_rows)).
//!
//! A sandbox that a long load test appends to holds the whole sheet: ~320 bytes a row of the
//! order flow's analytics rows as `Vec<Value>`, the largest part of the main job's heap that grew
//! with the orders (`docs/scaling.md`). With a limit, a row past it costs 24 bytes here (its place
//! in the file) and its cells are in an anonymous temporary file (`tempfile`: unlinked when the
//! sandbox ends, on every platform), read back when a request touches the row. The rows kept
//! are the ones a sheet that is appended to touches next: the file takes the first rows first.
//!
//! What stays bounded: rows in memory stay under one and a half times the limit between writes,
//! and under twice the limit during one (a write that changes many rows of the file sends the
//! rows it has changed back to the file as it goes). A row read back and changed is appended to
//! the file again; once the bytes no row points at pass half of those that rows do, the file is
//! rewritten in row order without them, so the file stays within 1.5 times its rows' encoded
//! size (plus 64 KiB) however often rows change, and a read of rows in order reads it forward.
//! (A rewrite that fails, the disk full, keeps the old file and is not tried again: from then
//! on the file grows with every row changed, as before.)
//!
//! Why not a crate: the store is ~200 lines over a `Vec` and one file, with an exact encoding of
//! the four cell kinds a sheet holds (the grid stores no arrays or objects); an embedded
//! key-value store would bring its own pages, cache and threads for what is an append-only log
//! rewritten now and then.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Number, Value};

/// Where and past how many rows a sheet's rows go to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpillConfig {
    /// Rows with cells kept in memory after a spill (at most half as many again between spills).
    pub(crate) resident_rows: usize,
    /// The directory of the file (the system's temporary directory when `None`).
    pub(crate) dir: Option<PathBuf>,
}

/// One row: its cells in memory, or where they are in the file.
#[derive(Debug, Clone)]
enum Row {
    Here(Vec<Value>),
    Spilled { at: u64, len: u32 },
}

/// The file rows are written to, shared by the clones of a sheet: every spill appends at its
/// end, so a row's place in it never changes (a rewrite makes a new file; a clone still
/// reading the old one keeps it).
struct SpillFile {
    file: File,
    end: u64,
    /// The bytes of the file from `block_at` on, as last read: a read of rows in order (a
    /// range, a key column) reads the file a block at a time, not a row at a time (that was
    /// ~1.3 µs a row for the read's system call; `benches/benches/sheets_sandbox.rs`). A file
    /// is only ever appended to, so a block read never goes stale.
    block_at: u64,
    block: Vec<u8>,
}

impl std::fmt::Debug for SpillFile {
    // Not the block's bytes: a 64 KiB dump in a sheet's `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillFile")
            .field("end", &self.end)
            .field("block_at", &self.block_at)
            .field("block_len", &self.block.len())
            .finish_non_exhaustive()
    }
}

/// How much of the file one read takes.
const BLOCK: usize = 64 * 1024;

impl SpillFile {
    /// The `len` bytes at `at`, from the block when it holds them, else from a new block read
    /// there.
    fn bytes(&mut self, at: u64, len: u32) -> io::Result<&[u8]> {
        let len = len as usize;
        let cached = at >= self.block_at && (at - self.block_at) as usize + len <= self.block.len();
        if !cached {
            // From the 64 KiB boundary at or before the row, so a read of rows backwards (a
            // read by columns, the search for trailing empty rows) finds the rows before it in
            // the same block instead of reading a block per row.
            let start = at - at % BLOCK as u64;
            let need = (at - start) as usize + len;
            // Whole blocks up to the row's end and past it: a row across a block's end takes
            // the next block too, so a forward read does not read that block twice.
            let want = (self.end.saturating_sub(start) as usize).min(need.next_multiple_of(BLOCK));
            if want < need {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a row lies past the end of the file",
                ));
            }
            // Cleared before anything can fail: a block is never left half-read. A block grown
            // for a row longer than 64 KiB is given back.
            self.block.clear();
            self.block.shrink_to(want);
            self.file.seek(SeekFrom::Start(start))?;
            self.block.resize(want, 0);
            if let Err(e) = self.file.read_exact(&mut self.block) {
                self.block.clear();
                return Err(e);
            }
            self.block_at = start;
        }
        let from = (at - self.block_at) as usize;
        Ok(&self.block[from..from + len])
    }
}

/// A sheet's rows (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    rows: Vec<Row>,
    spill: Option<Spill>,
}

#[derive(Debug, Clone)]
struct Spill {
    config: SpillConfig,
    file: Option<Arc<Mutex<SpillFile>>>,
    /// Rows `Here` with at least one cell.
    resident: usize,
    /// Rows `Spilled`.
    in_file: usize,
    /// No row before this one is `Here` with cells.
    first_here: usize,
    /// A spill failed (the file could not be made or written): rows stay in memory from then on.
    failed: bool,
    /// A rewrite of the file failed: the old file is kept, and no rewrite is tried again (each
    /// try would copy every row in the file once more).
    compact_failed: bool,
    /// Bytes of the file that `Spilled` rows point at; the rest belongs to rows read back since.
    live: u64,
    /// Bytes no row points at before a rewrite of the file is worth it (64 KiB; less in tests).
    compact_after: u64,
}

impl Rows {
    /// Rows kept in memory past `config.resident_rows` go to a file.
    pub(crate) fn spilling(config: Option<SpillConfig>) -> Self {
        Rows {
            rows: Vec::new(),
            spill: config.map(|config| Spill {
                config,
                file: None,
                resident: 0,
                in_file: 0,
                first_here: 0,
                failed: false,
                compact_failed: false,
                live: 0,
                compact_after: BLOCK as u64,
            }),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Rows whose cells are in the file.
    pub(crate) fn in_file(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.in_file)
    }

    /// Row `i`'s cells (0-based), read back from the file when spilled.
    ///
    /// # Panics
    /// When a spilled row cannot be read back from the sandbox's own temporary file (an I/O
    /// error of the disk under it): the row's cells would otherwise be answered wrongly.
    pub(crate) fn get(&self, i: usize) -> Option<Cow<'_, [Value]>> {
        self.get_upto(i, usize::MAX)
    }

    /// Row `i`'s first `cells` cells at most (all of them when it is in memory): a read of the
    /// first columns of rows in the file decodes only those.
    ///
    /// # Panics
    /// As [`get`](Self::get).
    pub(crate) fn get_upto(&self, i: usize, cells: usize) -> Option<Cow<'_, [Value]>> {
        Some(match self.rows.get(i)? {
            Row::Here(row) => Cow::Borrowed(row.as_slice()),
            Row::Spilled { at, len } => {
                Cow::Owned(self.load(*at, *len, cells).unwrap_or_else(|e| {
                    panic!("the Sheets sandbox could not read row {} back: {e}", i + 1)
                }))
            }
        })
    }

    fn load(&self, at: u64, len: u32, cells: usize) -> io::Result<Vec<Value>> {
        let file = self
            .spill
            .as_ref()
            .and_then(|s| s.file.as_ref())
            .ok_or_else(|| io::Error::other("a row is spilled but there is no file"))?;
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        decode(f.bytes(at, len)?, cells)
    }

    /// Row `i`'s cells to change; rows up to it are added empty, a spilled row is read back
    /// and kept in memory until the next spill.
    ///
    /// # Panics
    /// As [`get`](Self::get).
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Vec<Value> {
        if self.rows.len() <= i {
            self.rows.resize_with(i + 1, || Row::Here(Vec::new()));
        }
        // A row about to be counted in memory when twice the limit already are: the rows kept
        // go to the file first (not row `i`: it has no cells in memory yet), so a write that
        // changes many rows of the file holds twice the limit at most, not all it touched.
        let counts = match &self.rows[i] {
            Row::Spilled { .. } => true,
            Row::Here(cells) => cells.is_empty(),
        };
        if counts
            && let Some(spill) = &self.spill
            && spill.resident >= spill.config.resident_rows.saturating_mul(2).max(1)
        {
            self.spill_to_limit();
        }
        let loaded = match self.rows[i] {
            Row::Spilled { at, len } => {
                let cells = self.load(at, len, usize::MAX).unwrap_or_else(|e| {
                    panic!("the Sheets sandbox could not read row {} back: {e}", i + 1)
                });
                if let Some(spill) = &mut self.spill {
                    spill.live -= u64::from(len);
                }
                Some(cells)
            }
            Row::Here(_) => None,
        };
        let was_here = loaded.is_none();
        let counted = match loaded {
            Some(cells) => {
                self.rows[i] = Row::Here(cells);
                true
            }
            // Counted now: the caller sets a cell, and a row never loses its cells.
            None => matches!(&self.rows[i], Row::Here(cells) if cells.is_empty()),
        };
        if let Some(spill) = &mut self.spill {
            spill.in_file -= usize::from(counted && !was_here);
            spill.resident += usize::from(counted);
            spill.first_here = spill.first_here.min(i);
        }
        let Row::Here(cells) = &mut self.rows[i] else {
            unreachable!("made resident above")
        };
        cells
    }

    /// Inserts `n` empty rows before row `at` (0-based).
    pub(crate) fn insert_empty(&mut self, at: usize, n: usize) {
        let at = at.min(self.rows.len());
        self.rows.splice(
            at..at,
            std::iter::repeat_with(|| Row::Here(Vec::new())).take(n),
        );
        if let Some(spill) = &mut self.spill
            && spill.first_here > at
        {
            // The rows at and after `at` moved down by `n`.
            spill.first_here += n;
        }
    }

    /// After a write: past one and a half times the limit, the first rows kept in memory go to
    /// the file until the limit is met again. A spill that fails leaves its rows in memory and
    /// stops spilling (a warning says so), so nothing written is lost.
    pub(crate) fn after_write(&mut self) {
        if let Some(spill) = &self.spill {
            let limit = spill.config.resident_rows;
            if spill.resident > limit.saturating_add(limit / 2) {
                self.spill_to_limit();
            }
        }
    }

    /// The first rows kept in memory go to the file until the limit is met, and the file is
    /// rewritten when enough of it belongs to rows read back since.
    fn spill_to_limit(&mut self) {
        let Some(spill) = &mut self.spill else {
            return;
        };
        let limit = spill.config.resident_rows;
        if spill.failed {
            return;
        }
        let mut buf = Vec::new();
        let mut moved: Vec<(usize, u64, u32)> = Vec::new();
        let mut i = spill.first_here;
        while spill.resident - moved.len() > limit && i < self.rows.len() {
            if let Row::Here(cells) = &self.rows[i]
                && !cells.is_empty()
            {
                let start = buf.len();
                encode(cells, &mut buf);
                moved.push((i, start as u64, encoded_len(buf.len() - start)));
            }
            i += 1;
        }
        if moved.is_empty() {
            return;
        }
        match spill.append(&buf) {
            Ok(base) => {
                for &(r, at, len) in &moved {
                    self.rows[r] = Row::Spilled { at: base + at, len };
                }
                spill.resident -= moved.len();
                spill.in_file += moved.len();
                spill.first_here = i;
                spill.live += buf.len() as u64;
            }
            Err(e) => {
                spill.failed = true;
                tracing::warn!(
                    error = %e,
                    "the Sheets sandbox could not write rows to its file; they stay in memory"
                );
                return;
            }
        }
        let dead = spill.end().saturating_sub(spill.live);
        if !spill.compact_failed
            && dead >= spill.compact_after
            && dead > spill.live / 2
            && let Err(e) = compact(&mut self.rows, spill)
        {
            // The rows still point into the old file, which is whole: nothing is lost, but the
            // file grows with every row changed from now on.
            spill.compact_failed = true;
            tracing::warn!(
                error = %e,
                "the Sheets sandbox could not rewrite its rows' file; it keeps the old one"
            );
        }
    }
}

/// Rewrites the rows in the file to a new file, in row order, without the bytes of rows read
/// back since. The old file is read in its own order (a row changed and spilled again sits
/// after rows below it, so a read in row order would read a block per row at each seam) and
/// each run of rows that lands together in the new file is written at once. Until the new file
/// is whole the rows point into the old one, which a clone of the sheet may still share.
fn compact(rows: &mut [Row], spill: &mut Spill) -> io::Result<()> {
    let Some(old) = spill.file.clone() else {
        return Ok(());
    };
    // (place in the old file, length, place in the new one): 24 bytes a row in the file while
    // the rewrite runs.
    let mut places: Vec<(u64, u32, u64)> = Vec::with_capacity(spill.in_file);
    let mut end = 0u64;
    for row in rows.iter() {
        if let Row::Spilled { at, len } = *row {
            places.push((at, len, end));
            end += u64::from(len);
        }
    }
    places.sort_unstable_by_key(|p| p.0);
    let mut file = spill.make_file()?;
    {
        let mut old = old.lock().unwrap_or_else(|p| p.into_inner());
        let mut run: Vec<u8> = Vec::new();
        let mut run_at = 0u64;
        for &(at, len, to) in &places {
            if to != run_at + run.len() as u64 || run.len() >= BLOCK {
                write_at(&mut file, run_at, &run)?;
                run.clear();
                run_at = to;
            }
            run.extend_from_slice(old.bytes(at, len)?);
        }
        write_at(&mut file, run_at, &run)?;
    }
    let mut next = 0u64;
    for row in rows.iter_mut() {
        if let Row::Spilled { at, len } = row {
            *at = next;
            next += u64::from(*len);
        }
    }
    spill.file = Some(Arc::new(Mutex::new(SpillFile {
        file,
        end,
        block_at: 0,
        block: Vec::new(),
    })));
    debug_assert_eq!(spill.live, end, "the rows' bytes, now all there is");
    Ok(())
}

fn write_at(file: &mut File, at: u64, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)
}

impl Spill {
    /// A new anonymous file in the configured directory.
    fn make_file(&self) -> io::Result<File> {
        match &self.config.dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
    }

    /// The file's length (0 before it is made).
    fn end(&self) -> u64 {
        self.file
            .as_ref()
            .map_or(0, |f| f.lock().unwrap_or_else(|p| p.into_inner()).end)
    }

    /// Appends `bytes` to the file (made on first use); where they start.
    fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        if self.file.is_none() {
            let file = self.make_file()?;
            self.file = Some(Arc::new(Mutex::new(SpillFile {
                file,
                end: 0,
                block_at: 0,
                block: Vec::new(),
            })));
        }
        let file = self.file.as_ref().expect("made above");
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        let at = f.end;
        f.file.seek(SeekFrom::Start(at))?;
        f.file.write_all(bytes)?;
        f.end = at + bytes.len() as u64;
        Ok(at)
    }
}

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UNSIGNED: u8 = 3;
const SIGNED: u8 = 4;
const FLOAT: u8 = 5;
const STRING: u8 = 6;

/// The row's cells, each a tag byte and its value (little-endian numbers, strings as a length
/// and UTF-8): exact for every cell the grid stores (`null`, booleans, numbers, strings).
fn encode(cells: &[Value], out: &mut Vec<u8>) {
    for v in cells {
        match v {
            Value::Null => out.push(NULL),
            Value::Bool(false) => out.push(FALSE),
            Value::Bool(true) => out.push(TRUE),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    out.push(UNSIGNED);
                    out.extend_from_slice(&u.to_le_bytes());
                } else if let Some(i) = n.as_i64() {
                    out.push(SIGNED);
                    out.extend_from_slice(&i.to_le_bytes());
                } else {
                    out.push(FLOAT);
                    out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
                }
            }
            // The grid stores arrays and objects as their JSON text (`grid::store`).
            Value::String(_) | Value::Array(_) | Value::Object(_) => {
                let text: Cow<'_, str> = match v {
                    Value::String(s) => Cow::Borrowed(s),
                    other => Cow::Owned(other.to_string()),
                };
                out.push(STRING);
                out.extend_from_slice(&encoded_len(text.len()).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

/// A row's or a string's encoded length. Under 4 GiB: the grid takes at most 18,278 columns
/// ([`MAX_COLUMN`](crate::a1::MAX_COLUMN)) of 50,000 characters
/// ([`MAX_CELL_CHARS`](super::grid::MAX_CELL_CHARS)), at most 3.7 GB a row.
fn encoded_len(len: usize) -> u32 {
    u32::try_from(len).expect("a row the grid takes encodes in under 4 GiB")
}

/// The first `max` cells of an encoded row.
fn decode(mut bytes: &[u8], max: usize) -> io::Result<Vec<Value>> {
    fn take<'b>(bytes: &mut &'b [u8], n: usize) -> io::Result<&'b [u8]> {
        if bytes.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a row is cut short",
            ));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn eight(bytes: &mut &[u8]) -> io::Result<[u8; 8]> {
        Ok(take(bytes, 8)?.try_into().expect("eight bytes"))
    }
    let mut cells = Vec::new();
    while cells.len() < max
        && let Some((&tag, rest)) = bytes.split_first()
    {
        bytes = rest;
        cells.push(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UNSIGNED => Value::from(u64::from_le_bytes(eight(&mut bytes)?)),
            SIGNED => Value::from(i64::from_le_bytes(eight(&mut bytes)?)),
            FLOAT => Number::from_f64(f64::from_le_bytes(eight(&mut bytes)?))
                .map_or(Value::Null, Value::Number),
            STRING => {
                let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().expect("four"));
                let text = std::str::from_utf8(take(&mut bytes, len as usize)?)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Value::String(text.to_owned())
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown cell tag {other}"),
                ));
            }
        });
    }
    Ok(cells)
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
