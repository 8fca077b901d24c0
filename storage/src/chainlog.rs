//! Append-only logs whose entries are hashed with their predecessor and signed by the unit.
//!
//! One JSON object a line: `{"seq":…,"time_ns":…,"prev":…,"body":…,"hash":…,"sig":…}` where
//! `hash = SHA-256(prev ‖ canonical JSON of {seq, time_ns, body})` and `sig` is the unit's
//! Ed25519 signature of `hash`. An edited entry breaks its hash, a removed one breaks the
//! sequence and the next entry's `prev`, a reordered one both. Entries are made durable
//! (fdatasync) before `append` returns. The audit log, the destruction log, the hold log and
//! each camera's manifest log are all of this kind.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use rdc_format::chain::{
    Entry, EntryError, GENESIS, entry_hash, signed_by_any, verify_entry, verify_entry_by,
};

use crate::signing::UnitKey;
use crate::{Error, io_err};

/// An open log, ready to append (or, opened without a key, only to read).
#[derive(Debug)]
pub struct ChainLog {
    path: PathBuf,
    /// `None` when the log is missing and opened read-only.
    file: Option<File>,
    head: String,
    next_seq: u64,
    /// The `seq` field of the newest entry's body, if it has one (manifest logs).
    last_body_seq: Option<u64>,
    len: u64,
    /// `None`: opened read-only; `append` refuses.
    key: Option<Arc<UnitKey>>,
}

impl ChainLog {
    /// Opens (creating) the log at `path`. Reads only the end of the file: a torn last line
    /// (a power cut mid-append, never acknowledged) is cut off, and the last entry gives the
    /// head and the next sequence number. `verify` reads the rest.
    pub fn open(path: &Path, key: Arc<UnitKey>) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .mode(0o600)
            .create(true)
            .open(path)
            .map_err(io_err("open", path))?;
        Self::from_file(path, file, Some(key))
    }

    /// Opens the log only to read it: nothing is created, cut or appended. A missing log reads
    /// as empty.
    pub fn open_read_only(path: &Path) -> Result<Self, Error> {
        match File::open(path) {
            Ok(f) => Self::from_file(path, f, None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ChainLog {
                path: path.to_owned(),
                file: None,
                head: GENESIS.to_owned(),
                next_seq: 0,
                last_body_seq: None,
                len: 0,
                key: None,
            }),
            Err(e) => Err(io_err("open", path)(e)),
        }
    }

    fn from_file(path: &Path, mut file: File, key: Option<Arc<UnitKey>>) -> Result<Self, Error> {
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        let (mut head, mut next_seq, mut good_len) = (GENESIS.to_owned(), 0, 0u64);
        let mut last_body_seq = None;
        // Read back from the end until the window holds the last complete line.
        let mut window = 4096u64;
        loop {
            let start = len.saturating_sub(window);
            let mut buf = vec![0u8; (len - start) as usize];
            file.read_exact_at(&mut buf, start)
                .map_err(io_err("read", path))?;
            let end = match buf.iter().rposition(|b| *b == b'\n') {
                Some(i) => i,
                None if start == 0 => {
                    break; // no complete line at all
                }
                None => {
                    window *= 4;
                    continue;
                }
            };
            let line_start = match buf[..end].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if start == 0 => 0,
                None => {
                    window *= 4;
                    continue;
                }
            };
            good_len = start + end as u64 + 1;
            match serde_json::from_slice::<Entry>(&buf[line_start..end]) {
                Ok(e) => {
                    last_body_seq = e.body["seq"].as_u64();
                    head = e.hash;
                    next_seq = e.seq + 1;
                }
                Err(err) => {
                    // Damaged, not torn: keep recording after the last good entry; `verify`
                    // reports the damaged line.
                    tracing::error!(path = %path.display(), %err, "the last log entry is unreadable; continuing after the last readable one (run verify)");
                    if let Some(e) =
                        last_good_entry(&buf[..line_start]).or_else(|| scan_last_good(path))
                    {
                        last_body_seq = e.body["seq"].as_u64();
                        head = e.hash;
                        next_seq = e.seq + 1;
                    }
                }
            }
            break;
        }
        if len != good_len && key.is_some() {
            tracing::warn!(path = %path.display(), bytes = len - good_len, "cutting a torn last log entry (power cut while it was written)");
            file.set_len(good_len).map_err(io_err("truncate", path))?;
            file.sync_all().map_err(io_err("fsync", path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err("seek", path))?;
        Ok(ChainLog {
            path: path.to_owned(),
            file: Some(file),
            head,
            next_seq,
            last_body_seq,
            len: good_len,
            key,
        })
    }

    /// Appends `body`, durably. Returns the entry's sequence number.
    pub fn append<T: Serialize>(&mut self, time_ns: i64, body: &T) -> Result<u64, Error> {
        self.append_entry(time_ns, body).map(|e| e.seq)
    }

    /// Appends `body`, durably, and returns the signed entry as written: a receipt that anyone
    /// with the unit's public key can check on its own.
    pub fn append_entry<T: Serialize>(&mut self, time_ns: i64, body: &T) -> Result<Entry, Error> {
        let (Some(key), Some(file)) = (&self.key, &mut self.file) else {
            return Err(Error::ReadOnly);
        };
        let body = serde_json::to_value(body).map_err(|e| Error::Encode(e.to_string()))?;
        let body_seq = body["seq"].as_u64();
        let seq = self.next_seq;
        let hash = entry_hash(&self.head, seq, time_ns, &body);
        let sig = B64.encode(key.sign(hash.as_bytes()));
        let e = Entry {
            seq,
            time_ns,
            prev: std::mem::take(&mut self.head),
            body,
            hash: hash.clone(),
            sig,
        };
        let mut line = serde_json::to_vec(&e).map_err(|e| Error::Encode(e.to_string()))?;
        line.push(b'\n');
        if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
            // A partial line (a full disk) is cut, so the next append starts a clean line.
            let _ = file.set_len(self.len);
            self.head = e_prev_restore(&line);
            return Err(io_err("append to", &self.path)(e));
        }
        self.last_body_seq = body_seq;
        self.head = hash;
        self.next_seq += 1;
        self.len += line.len() as u64;
        Ok(e)
    }

    /// The file's length: the index records it to know whether it is up to date.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sequence number the next entry gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The `seq` field of the newest entry's body (a manifest's segment number).
    pub fn last_body_seq(&self) -> Option<u64> {
        self.last_body_seq
    }

    pub fn head(&self) -> &str {
        &self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The `prev` of an entry line that could not be written: the head stays what it was.
fn e_prev_restore(line: &[u8]) -> String {
    serde_json::from_slice::<Entry>(line.strip_suffix(b"\n").unwrap_or(line))
        .map(|e| e.prev)
        .unwrap_or_else(|_| GENESIS.to_owned())
}

/// The last entry in `buf` that parses (complete lines only).
fn last_good_entry(buf: &[u8]) -> Option<Entry> {
    buf.split(|b| *b == b'\n')
        .rev()
        .find_map(|l| serde_json::from_slice::<Entry>(l).ok())
}

/// The last entry of the whole file that parses.
fn scan_last_good(path: &Path) -> Option<Entry> {
    let f = File::open(path).ok()?;
    BufReader::new(f)
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_slice::<Entry>(&l).ok())
        .last()
}

/// Reads every entry of a log, typed. Lines that do not parse are skipped (`verify` names them).
pub fn read_all<T: DeserializeOwned>(path: &Path) -> Result<Vec<(Entry, T)>, Error> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut out = Vec::new();
    // Lines as bytes: a line a failing disk garbled (not even UTF-8) is skipped like any other
    // unreadable line, not an error for the whole log.
    for line in BufReader::new(f).split(b'\n') {
        let line = line.map_err(io_err("read", path))?;
        if let Ok(e) = serde_json::from_slice::<Entry>(&line)
            && let Ok(t) = serde_json::from_value::<T>(e.body.clone())
        {
            out.push((e, t));
        }
    }
    Ok(out)
}

/// Checks a whole log: every line parses, hashes and signatures (by any of `keys`) hold,
/// sequence and chain are unbroken. Returns one message per problem, naming the entry.
pub fn verify(path: &Path, keys: &[[u8; 32]]) -> Result<Vec<String>, Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut problems = Vec::new();
    let mut prev_hash = GENESIS.to_owned();
    let mut expect_seq = 0u64;
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(io_err("read", path))?;
        let lineno = i + 1;
        let e: Entry = match serde_json::from_slice(&line) {
            Ok(e) => e,
            Err(err) => {
                problems.push(format!(
                    "{name} line {lineno}: not a log entry ({err}): edited or corrupted"
                ));
                continue;
            }
        };
        if e.seq != expect_seq {
            if e.seq > expect_seq {
                problems.push(format!(
                    "{name} line {lineno}: entry {} follows entry {}: entries {}..={} were removed",
                    e.seq,
                    expect_seq.wrapping_sub(1),
                    expect_seq,
                    e.seq - 1
                ));
            } else {
                problems.push(format!("{name} line {lineno}: entry {} is out of order (expected {expect_seq}): entries were reordered or duplicated", e.seq));
            }
        }
        let recomputed = entry_hash(&e.prev, e.seq, e.time_ns, &e.body);
        if recomputed != e.hash {
            problems.push(format!("{name} line {lineno}: entry {} was edited (its content no longer matches its hash)", e.seq));
        } else if !signed_by_any(&e, keys) {
            problems.push(format!(
                "{name} line {lineno}: entry {} is not signed by this unit",
                e.seq
            ));
        }
        if e.prev != prev_hash && e.seq == expect_seq {
            problems.push(format!(
                "{name} line {lineno}: entry {} does not follow the entry before it (chain broken)",
                e.seq
            ));
        }
        prev_hash = e.hash;
        expect_seq = e.seq + 1;
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_with(n: u64) -> (tempfile::TempDir, PathBuf, Arc<UnitKey>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let key = Arc::new(UnitKey::ephemeral());
        let mut log = ChainLog::open(&path, key.clone()).unwrap();
        for i in 0..n {
            log.append(i as i64, &json!({"who": "j.smith", "i": i}))
                .unwrap();
        }
        (dir, path, key)
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(p: &Path, l: &[String]) {
        std::fs::write(p, l.iter().map(|s| format!("{s}\n")).collect::<String>()).unwrap();
    }

    #[test]
    fn intact_log_verifies_and_reopens_where_it_left() {
        let (_d, path, key) = log_with(5);
        assert!(verify(&path, &[key.public()]).unwrap().is_empty());
        let mut log = ChainLog::open(&path, key.clone()).unwrap();
        assert_eq!(log.append(9, &json!({"x": 1})).unwrap(), 5);
        assert!(verify(&path, &[key.public()]).unwrap().is_empty());
    }

    #[test]
    fn edited_entry_is_named() {
        let (_d, path, key) = log_with(5);
        let mut l = lines(&path);
        l[2] = l[2].replace("j.smith", "a.nother");
        write_lines(&path, &l);
        let p = verify(&path, &[key.public()]).unwrap();
        assert!(p.iter().any(|m| m.contains("entry 2 was edited")), "{p:?}");
    }

    #[test]
    fn removed_entry_is_named() {
        let (_d, path, key) = log_with(5);
        let mut l = lines(&path);
        l.remove(3);
        write_lines(&path, &l);
        let p = verify(&path, &[key.public()]).unwrap();
        assert!(
            p.iter().any(|m| m.contains("entries 3..=3 were removed")),
            "{p:?}"
        );
    }

    #[test]
    fn reordered_entries_are_named() {
        let (_d, path, key) = log_with(5);
        let mut l = lines(&path);
        l.swap(1, 2);
        write_lines(&path, &l);
        let p = verify(&path, &[key.public()]).unwrap();
        assert!(
            p.iter()
                .any(|m| m.contains("out of order") || m.contains("removed")),
            "{p:?}"
        );
    }

    #[test]
    fn forged_entry_with_recomputed_hash_is_not_signed() {
        let (_d, path, key) = log_with(3);
        let mut l = lines(&path);
        let mut e: Entry = serde_json::from_str(&l[2]).unwrap();
        e.body = json!({"who": "forger"});
        e.hash = entry_hash(&e.prev, e.seq, e.time_ns, &e.body);
        l[2] = serde_json::to_string(&e).unwrap();
        write_lines(&path, &l);
        let p = verify(&path, &[key.public()]).unwrap();
        assert!(
            p.iter().any(|m| m.contains("entry 2 is not signed")),
            "{p:?}"
        );
    }

    #[test]
    fn a_damaged_last_entry_does_not_stop_the_log() {
        let (_d, path, key) = log_with(3);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"this line was overwritten by a failing disk\n")
            .unwrap();
        drop(f);
        let mut log =
            ChainLog::open(&path, key.clone()).expect("a damaged entry must not stop the log");
        assert_eq!(log.append(9, &json!({"after": "damage"})).unwrap(), 3);
        let p = verify(&path, &[key.public()]).unwrap();
        assert!(
            p.iter().any(|m| m.contains("line 4: not a log entry")),
            "{p:?}"
        );
    }

    #[test]
    fn torn_last_line_is_cut_at_open() {
        let (_d, path, key) = log_with(3);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"time_ns\":").unwrap();
        drop(f);
        let mut log = ChainLog::open(&path, key.clone()).unwrap();
        assert_eq!(log.append(1, &json!({})).unwrap(), 3);
        assert!(verify(&path, &[key.public()]).unwrap().is_empty());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// A line of a damaged log: garbage, or a valid entry's line with bytes changed.
        fn line() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(|mut v| {
                    v.retain(|b| *b != b'\n');
                    v
                }),
                Just(
                    br#"{"seq":0,"time_ns":1,"prev":"x","body":{},"hash":"y","sig":"z"}"#.to_vec()
                ),
            ]
        }

        proptest! {
            #[test]
            fn any_log_file_opens_and_takes_the_next_entry(
                lines in proptest::collection::vec(line(), 0..8),
                torn in proptest::collection::vec(any::<u8>(), 0..80),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("audit.jsonl");
                let mut bytes = Vec::new();
                for l in &lines {
                    bytes.extend_from_slice(l);
                    bytes.push(b'\n');
                }
                bytes.extend(torn.iter().filter(|b| **b != b'\n'));
                std::fs::write(&path, &bytes).unwrap();
                let key = Arc::new(UnitKey::ephemeral());
                let _ = verify(&path, &[key.public()]).unwrap();
                let _ = read_all::<serde_json::Value>(&path).unwrap();
                let mut log = ChainLog::open(&path, key.clone()).expect("a damaged log never stops the store");
                log.append(1, &json!({"after": "damage"})).unwrap();
                // The new entry itself is whole and signed.
                let bytes = std::fs::read(&path).unwrap();
                let last_line = bytes.strip_suffix(b"\n").unwrap().rsplit(|b| *b == b'\n').next().unwrap();
                let last: Entry = serde_json::from_slice(last_line).unwrap();
                prop_assert!(verify_entry(&last, &key.public()).is_ok());
            }

            #[test]
            fn any_single_change_to_a_log_is_named(
                n in 3u64..10,
                which in any::<usize>(),
                how in 0u8..3,
                at in any::<usize>(),
                to in 0x21u8..0x7f,
            ) {
                let (_d, path, key) = log_with(n);
                let mut l = lines_of(&path);
                // Not the last line: cutting the newest entries is what the anchors of
                // `rdc audit` catch, not the chain.
                let i = which % (l.len() - 1);
                match how {
                    0 => { l.remove(i); }
                    1 => l.swap(i, i + 1),
                    _ => {
                        let mut b = l[i].clone().into_bytes();
                        let j = at % b.len();
                        let to = if to == b'"' || to == b'\\' { b'#' } else { to };
                        prop_assume!(b[j] != to);
                        b[j] = to;
                        l[i] = String::from_utf8(b).unwrap();
                    }
                }
                write_lines(&path, &l);
                prop_assert!(!verify(&path, &[key.public()]).unwrap().is_empty());
            }
        }

        fn lines_of(p: &Path) -> Vec<String> {
            lines(p)
        }
    }
}
