//! What the server holds: entries (reserved, then complete), the blobs behind v2's signed
//! URLs, the fault list and the request log, all behind one lock; and the rules both
//! protocols share: key normalisation per personality, the token check, and matching
//! (docs/protocol.md §6.1).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::faults::Fault;
use super::http::Request;
use super::{LoggedRequest, Personality, ServerConfig};

/// One reservation; complete once `data` is set.
pub(super) struct Entry {
    pub(super) id: u64,
    pub(super) key: String,
    pub(super) version: String,
    /// v1 `cacheSize` (`None` when absent or ≤ 0).
    pub(super) reserved_size: Option<u64>,
    pub(super) chunks: BTreeMap<u64, Vec<u8>>,
    /// Set at commit / finalize.
    pub(super) data: Option<Arc<Stored>>,
    pub(super) created: u64,
}

/// A blob behind a signed URL: its uncommitted blocks, and its bytes once written.
#[derive(Default)]
pub(super) struct Blob {
    pub(super) blocks: HashMap<String, Arc<Vec<u8>>>,
    pub(super) data: Option<Arc<Stored>>,
}

/// An entry's bytes, kept as the pieces they were uploaded in: joining the chunks or blocks of
/// a 700 MB entry at commit would copy it whole, on the saving client's clock.
#[derive(Default)]
pub(super) struct Stored {
    pub(super) pieces: Vec<Arc<Vec<u8>>>,
    pub(super) len: usize,
}

impl Stored {
    pub(super) fn new(pieces: Vec<Arc<Vec<u8>>>) -> Stored {
        let len = pieces.iter().map(|p| p.len()).sum();
        Stored { pieces, len }
    }

    /// Bytes that arrived in one piece.
    pub(super) fn whole(bytes: Vec<u8>) -> Arc<Stored> {
        Arc::new(Stored::new(vec![Arc::new(bytes)]))
    }

    /// The slices that make up `range`, in order.
    pub(super) fn slices(&self, range: std::ops::Range<usize>) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in &self.pieces {
            let (start, end) = (offset, offset + piece.len());
            offset = end;
            if end <= range.start || start >= range.end {
                continue;
            }
            out.push(&piece[range.start.max(start) - start..range.end.min(end) - start]);
        }
        out
    }
}

/// Everything the server holds, behind the one lock every request takes.
pub(super) struct State {
    pub(super) config: ServerConfig,
    pub(super) origin: String,
    pub(super) signature: String,
    pub(super) entries: Vec<Entry>,
    pub(super) blobs: HashMap<u64, Blob>,
    pub(super) next_id: u64,
    pub(super) clock: u64,
    pub(super) faults: Vec<Fault>,
    pub(super) log: Vec<LoggedRequest>,
}

impl State {
    pub(super) fn github(&self) -> bool {
        self.config.personality == Personality::Github
    }

    /// The key as this personality stores and compares it: the runners' servers lower-case it
    /// with Go's `strings.ToLower`, one character for one (`İ` becomes `i`, a final `Σ` `σ`).
    pub(super) fn norm(&self, key: &str) -> String {
        if self.github() {
            return key.to_string();
        }
        key.chars()
            .map(|c| match c {
                '\u{130}' => 'i',
                c => {
                    let mut lower = c.to_lowercase();
                    match (lower.next(), lower.next()) {
                        (Some(one), None) => one,
                        _ => c,
                    }
                }
            })
            .collect()
    }

    pub(super) fn authorized(&self, request: &Request) -> bool {
        request.header("authorization") == Some(&format!("Bearer {}", self.config.token))
    }

    pub(super) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// docs/protocol.md §6.1: per key in order, the newest exact match, else the newest prefix match;
    /// only complete entries with the identical version.
    pub(super) fn find(&self, keys: &[String], version: &str) -> Option<&Entry> {
        let complete = || self.entries.iter().filter(|e| e.data.is_some() && e.version == version);
        for (i, key) in keys.iter().enumerate() {
            let key = self.norm(key);
            // GitHub prefix-matches restore keys directly; act/Forgejo try exact first for all.
            if (i == 0 || !self.github())
                && let Some(e) = complete().filter(|e| e.key == key).max_by_key(|e| e.created)
            {
                return Some(e);
            }
            if let Some(e) = complete().filter(|e| e.key.starts_with(&key)).max_by_key(|e| e.created) {
                return Some(e);
            }
        }
        None
    }

    pub(super) fn reserve(
        &mut self,
        key: &str,
        version: &str,
        reserved_size: Option<u64>,
    ) -> Result<u64, String> {
        let key = self.norm(key);
        if self.github() && self.entries.iter().any(|e| e.key == key && e.version == version) {
            return Err(key);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            key,
            version: version.to_string(),
            reserved_size,
            chunks: BTreeMap::new(),
            data: None,
            created: 0,
        });
        Ok(id)
    }
}
