//! One simulated power loss: the directory becomes one legal post-crash state of the
//! `Storage` contract (`walden_core::storage`, `FAULT-MODEL.md`), chosen by the seed.
//!
//! Only what was not yet durable may change:
//!
//! * A directory created since the last sync of its parent vanishes, with everything in it
//!   (*new directory dropped*): the files' own names and contents may have been synced, but
//!   the name that leads to them was not. It is always dropped: keeping it is the state a
//!   synced parent gives, which every other crash explores.
//! * A file created since the last sync of its directory may vanish (*new file dropped*); a
//!   file removed since then may come back with its durable contents (*removed file
//!   resurrected*).
//! * A `set-size` since the file's last sync may be undone: the durable bytes past the new
//!   end come back (*truncate undone*).
//! * The file's unsynced change — every byte that differs from its durable contents — is kept
//!   whole, or only up to an arbitrary byte with the durable contents (or nothing) after it
//!   (*tail cut*), or kept in length with zeros from an arbitrary byte (*tail zeroed*), or kept
//!   up to a 512-byte sector boundary that falls inside a record (*torn mid-record at a sector
//!   boundary*), or kept sector by sector with an earlier sector lost and a later one kept
//!   (*sectors reordered*: writes between two syncs reach the disk in any order).
//!
//! Bytes that match the durable contents are never touched, so nothing a sync covered can
//! change. Garbage in torn sectors and media faults are left to the simulator's explorer.
//!
//! The seed picks every outcome. Three times in four, the fate of a file's unsynced bytes is the
//! kind seen least so far among those possible for that change (a sector boundary inside a
//! record is needed to tear mid-record, two touched sectors to reorder), so that one run of the
//! loop covers every kind; otherwise it is drawn by weight, keeping everything included.

use anyhow::{Context, Result};
use walden_core::parse_segment_name;
use walden_core::raw::{RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader};

use crate::durable::{DurableImage, parent};
use crate::rng::SplitMix64;
use crate::runner::GUEST_DATA_DIR;

/// The sector size of the simulated disk.
pub(crate) const SECTOR: usize = 512;

/// What power losses did, counted by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effects {
    pub(crate) tails_cut: u64,
    pub(crate) tails_zeroed: u64,
    pub(crate) torn_mid_record: u64,
    pub(crate) sectors_reordered: u64,
    pub(crate) truncates_undone: u64,
    pub(crate) files_dropped: u64,
    pub(crate) files_resurrected: u64,
    pub(crate) dirs_dropped: u64,
    /// Bytes the guest wrote that read differently after the crash.
    pub(crate) bytes_lost: u64,
}

impl Effects {
    pub(crate) fn add(&mut self, other: &Self) {
        self.tails_cut += other.tails_cut;
        self.tails_zeroed += other.tails_zeroed;
        self.torn_mid_record += other.torn_mid_record;
        self.sectors_reordered += other.sectors_reordered;
        self.truncates_undone += other.truncates_undone;
        self.files_dropped += other.files_dropped;
        self.files_resurrected += other.files_resurrected;
        self.dirs_dropped += other.dirs_dropped;
        self.bytes_lost += other.bytes_lost;
    }

    /// Every kind with its count and a one-line meaning, in report order.
    pub(crate) fn kinds(&self) -> [(&'static str, u64, &'static str); 8] {
        [
            (
                "tails cut",
                self.tails_cut,
                "unsynced bytes lost from some byte on",
            ),
            (
                "tails zeroed",
                self.tails_zeroed,
                "file length kept, unsynced bytes zero from some byte on",
            ),
            (
                "torn mid-record",
                self.torn_mid_record,
                "kept up to a 512-byte sector boundary inside a record, lost after",
            ),
            (
                "sectors reordered",
                self.sectors_reordered,
                "an unsynced sector lost while a later one survived",
            ),
            (
                "truncates undone",
                self.truncates_undone,
                "an unsynced truncate reverted: the cut bytes came back",
            ),
            (
                "new files dropped",
                self.files_dropped,
                "a file created since the last directory sync vanished",
            ),
            (
                "files resurrected",
                self.files_resurrected,
                "a file removed since the last directory sync came back",
            ),
            (
                "new directories dropped",
                self.dirs_dropped,
                "a directory created since its parent's last sync vanished, with its files",
            ),
        ]
    }
}

/// What one power loss did: the counts, and one line per file it changed.
#[derive(Debug, Default)]
pub(crate) struct PowerLoss {
    pub(crate) effects: Effects,
    pub(crate) notes: Vec<String>,
}

/// Turns the directory of `image` into one legal post-power-loss state chosen by `rng` (and
/// steered by the effects `seen` so far), then declares that state durable.
pub(crate) fn power_loss(
    image: &mut DurableImage,
    seen: &Effects,
    rng: &mut SplitMix64,
) -> Result<PowerLoss> {
    let mut loss = PowerLoss::default();
    for dir in image.dirs_now()? {
        // Parents come first: a directory inside a dropped one is gone already.
        if image.is_durable_name(&dir) || !image.dir.join(&dir).exists() {
            continue;
        }
        let inside: Vec<String> = image
            .files_now()?
            .into_iter()
            .filter(|name| name.starts_with(&dir))
            .collect();
        let mut bytes = 0;
        for name in &inside {
            bytes += image.read(name)?.len() as u64;
        }
        let path = image.dir.join(&dir);
        std::fs::remove_dir_all(&path).with_context(|| format!("dropping {}", path.display()))?;
        loss.effects.dirs_dropped += 1;
        loss.effects.bytes_lost += bytes;
        loss.notes.push(format!(
            "{dir}: created since the last sync of {}, dropped with everything in it ({} \
             file{}, {bytes} bytes)",
            match parent(&dir) {
                "" => GUEST_DATA_DIR,
                parent => parent,
            },
            inside.len(),
            if inside.len() == 1 { "" } else { "s" }
        ));
    }
    let now = image.files_now()?;
    for name in &now {
        let path = image.dir.join(name);
        let current = image.read(name)?;
        if !image.is_durable_name(name) && rng.chance(2, 3) {
            std::fs::remove_file(&path).with_context(|| format!("dropping {}", path.display()))?;
            loss.effects.files_dropped += 1;
            loss.effects.bytes_lost += current.len() as u64;
            loss.notes.push(format!(
                "{name}: created since the last directory sync, dropped ({} bytes)",
                current.len()
            ));
            continue;
        }
        let durable = image.durable_contents(name);
        let shortest = image
            .shortest_since_sync(name)
            .or((current.len() < durable.len()).then_some(current.len() as u64));
        let file_name = name.rsplit('/').next().unwrap_or(name);
        let segment = parse_segment_name(file_name).is_some();
        let outcome = resolve(&current, durable, shortest, segment, seen, rng);
        if let Some(bytes) = outcome.bytes {
            std::fs::write(&path, &bytes)
                .with_context(|| format!("rewriting {}", path.display()))?;
            loss.effects.add(&outcome.effects);
            loss.notes.push(format!("{name}: {}", outcome.note));
        }
    }
    for name in image.durable_names() {
        // A directory is never removed (the guest does not); a file whose directory is gone
        // (dropped above) cannot come back.
        let orphan = !image.dir.join(parent(&name)).is_dir();
        if name.ends_with('/') || orphan || now.contains(&name) || !rng.chance(2, 3) {
            continue;
        }
        let path = image.dir.join(&name);
        let durable = image.durable_contents(&name);
        std::fs::write(&path, durable)
            .with_context(|| format!("resurrecting {}", path.display()))?;
        loss.effects.files_resurrected += 1;
        loss.notes.push(format!(
            "{name}: removed since the last directory sync, came back ({} bytes)",
            durable.len()
        ));
    }
    image.settle()?;
    Ok(loss)
}

/// What became of one file's unsynced change.
struct Outcome {
    /// The file's new contents, if they differ from what is there.
    bytes: Option<Vec<u8>>,
    effects: Effects,
    note: String,
}

/// How the unsynced bytes of one file fare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Kept,
    /// Kept before this offset, lost from it on.
    Cut(usize),
    /// Kept before this offset, zeros from it on (the length survived).
    Zeroed(usize),
    /// Kept before this sector boundary inside a record, lost from it on.
    Torn(usize),
    /// Sector `.0` lost while the later sector `.1` survived; other sectors by `.2`'s bits.
    Reordered(usize, usize, u64),
}

/// Chooses a legal post-crash content for a file that holds `current` and durably holds
/// `durable`, shortened to `shortest` by an unsynced truncate if `Some`.
fn resolve(
    current: &[u8],
    durable: &[u8],
    shortest: Option<u64>,
    segment: bool,
    seen: &Effects,
    rng: &mut SplitMix64,
) -> Outcome {
    let truncated = shortest.is_some_and(|t| (t as usize) < durable.len());
    let undo = truncated && rng.chance(2, 3);
    // What the file holds where the unsynced writes do not survive.
    let base = if undo || !truncated {
        durable
    } else {
        &durable[..shortest.unwrap_or(0) as usize]
    };
    let changed = |i: usize| i >= base.len() || current[i] != base[i];
    let from = (0..current.len()).find(|&i| changed(i));
    let fate = match from {
        None => Fate::Kept,
        Some(from) => {
            let end = (from..current.len())
                .rev()
                .find(|&i| changed(i))
                .unwrap_or(from)
                + 1;
            choose(current, base, from, end, segment, seen, rng)
        }
    };
    let keep = |i: usize| match fate {
        Fate::Kept => true,
        Fate::Cut(at) | Fate::Zeroed(at) | Fate::Torn(at) => i < at,
        Fate::Reordered(lost, kept, bits) => {
            let s = i / SECTOR;
            s != lost && (s == kept || bits >> (s % 64) & 1 == 1)
        }
    };
    let len = match fate {
        Fate::Cut(at) | Fate::Torn(at) => at.max(base.len()),
        _ => current.len().max(base.len()),
    };
    let zeros = matches!(fate, Fate::Zeroed(_));
    let bytes: Vec<u8> = (0..len)
        .map(|i| match current.get(i) {
            Some(&b) if !changed(i) || keep(i) => b,
            _ if zeros => 0,
            _ => base.get(i).copied().unwrap_or(0),
        })
        .collect();
    let lost = (0..current.len())
        .filter(|&i| bytes.get(i) != Some(&current[i]))
        .count() as u64;
    if bytes == current {
        return Outcome {
            bytes: None,
            effects: Effects::default(),
            note: String::new(),
        };
    }
    let mut effects = Effects {
        bytes_lost: lost,
        ..Effects::default()
    };
    let mut note = String::new();
    if undo {
        effects.truncates_undone += 1;
        note.push_str(&format!(
            "truncate to {} undone ({} bytes back); ",
            shortest.unwrap_or(0),
            durable.len() as u64 - shortest.unwrap_or(0)
        ));
    }
    match fate {
        Fate::Kept => note.push_str("unsynced writes kept"),
        Fate::Cut(at) => {
            effects.tails_cut += u64::from(lost > 0);
            note.push_str(&format!("unsynced tail cut at byte {at}"));
        }
        Fate::Zeroed(at) => {
            effects.tails_zeroed += u64::from(lost > 0);
            note.push_str(&format!("unsynced tail zeroed from byte {at}"));
        }
        Fate::Torn(at) => {
            effects.torn_mid_record += 1;
            note.push_str(&format!(
                "torn mid-record at the sector boundary {at} (sector {})",
                at / SECTOR
            ));
        }
        Fate::Reordered(lost_sector, kept_sector, _) => {
            effects.sectors_reordered += 1;
            note.push_str(&format!(
                "unsynced sector {lost_sector} lost, later sector {kept_sector} kept"
            ));
        }
    }
    note.push_str(&format!(", {lost} unsynced bytes lost"));
    Outcome {
        bytes: Some(bytes),
        effects,
        note,
    }
}

/// Picks the fate of the unsynced bytes `from..end` (the first and past the last byte that
/// differ from `base`).
fn choose(
    current: &[u8],
    base: &[u8],
    from: usize,
    end: usize,
    segment: bool,
    seen: &Effects,
    rng: &mut SplitMix64,
) -> Fate {
    // A byte whose loss shows: it differs from what would be there instead.
    let visible = |i: usize| current[i] != base.get(i).copied().unwrap_or(0);
    let spans = if segment {
        record_spans(current)
    } else {
        Vec::new()
    };
    let torn: Vec<usize> = (from / SECTOR + 1..end.div_ceil(SECTOR))
        .map(|s| s * SECTOR)
        .filter(|&b| spans.iter().any(|&(s, e)| s < b && b < e))
        .filter(|&b| (b..end).any(visible))
        .collect();
    // Sectors of the change holding a visible byte: one may be lost while a later one is kept.
    let sectors: Vec<usize> = (from / SECTOR..end.div_ceil(SECTOR))
        .filter(|&s| (s * SECTOR..((s + 1) * SECTOR).min(end)).any(visible))
        .collect();
    // (weight, times this kind was seen, fate)
    let mut fates = vec![(3, u64::MAX, Fate::Kept)];
    let cut = rng.between(from as u64, end as u64 - 1) as usize;
    fates.push((2, seen.tails_cut, Fate::Cut(cut)));
    let zeroed = rng.between(from as u64, end as u64 - 1) as usize;
    fates.push((2, seen.tails_zeroed, Fate::Zeroed(zeroed)));
    if !torn.is_empty() {
        let at = torn[rng.between(0, torn.len() as u64 - 1) as usize];
        fates.push((3, seen.torn_mid_record, Fate::Torn(at)));
    }
    if sectors.len() >= 2 {
        let j = rng.between(1, sectors.len() as u64 - 1) as usize;
        let i = rng.between(0, j as u64 - 1) as usize;
        let others = rng.next_u64();
        fates.push((
            3,
            seen.sectors_reordered,
            Fate::Reordered(sectors[i], sectors[j], others),
        ));
    }
    if rng.chance(3, 4) {
        // The kind seen least so far (the first listed on a tie).
        if let Some((_, _, fate)) = fates.iter().min_by_key(|(_, n, _)| *n) {
            return *fate;
        }
    }
    let total: u64 = fates.iter().map(|(w, _, _)| w).sum();
    let mut roll = rng.between(0, total - 1);
    for (weight, _, fate) in &fates {
        if roll < *weight {
            return *fate;
        }
        roll -= weight;
    }
    Fate::Kept
}

/// The records a segment's bytes hold, as `(start, end)`, walking valid record headers from
/// the segment header on.
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let Ok(header) = SegmentHeader::decode(bytes) else {
        return Vec::new();
    };
    let mut spans = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while let Some(rest) = bytes.get(at..) {
        let Ok(record) = RecordHeader::decode(rest, header.checksum, header.salt) else {
            break;
        };
        let end = at + walden_core::raw::RECORD_HEADER_LEN + record.length as usize;
        spans.push((at, end));
        at = end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fates(current: &[u8], durable: &[u8], shortest: Option<u64>) -> Vec<Vec<u8>> {
        (0..200)
            .map(|seed| {
                let outcome = resolve(
                    current,
                    durable,
                    shortest,
                    false,
                    &Effects::default(),
                    &mut SplitMix64::new(seed),
                );
                outcome.bytes.unwrap_or_else(|| current.to_vec())
            })
            .collect()
    }

    /// A write inside an already durable length (the zero-filled part of a segment) is
    /// unsynced and can be lost; the durable bytes around it never change.
    #[test]
    fn overwrites_inside_the_durable_length_can_be_lost() {
        let durable = vec![0u8; 2048];
        let mut current = durable.clone();
        current[400..700].fill(7);
        let outcomes = fates(&current, &durable, None);
        for after in &outcomes {
            assert_eq!(after.len(), 2048);
            assert!(after[..400].iter().chain(&after[700..]).all(|&b| b == 0));
            assert!(after[400..700].iter().all(|&b| b == 0 || b == 7));
        }
        assert!(outcomes.iter().any(|a| a[400..700].iter().all(|&b| b == 0)));
        assert!(outcomes.iter().any(|a| a[400..700].iter().all(|&b| b == 7)));
        // Sector 0 (bytes 400..512) lost while sector 1 (512..700) survived.
        assert!(
            outcomes
                .iter()
                .any(|a| a[400..512].iter().all(|&b| b == 0) && a[512..700].iter().all(|&b| b == 7))
        );
    }

    /// Durable bytes are never changed, whatever the fate of the unsynced ones.
    #[test]
    fn durable_bytes_survive_every_fate() {
        let durable: Vec<u8> = (0..1500).map(|i| (i % 251) as u8 + 1).collect();
        let mut current = durable.clone();
        current[1000..1200].fill(0xee);
        current.extend(core::iter::repeat_n(0xdd, 900));
        for after in fates(&current, &durable, None) {
            assert_eq!(after[..1000], durable[..1000]);
            assert!(after.len() >= durable.len());
            for i in 1200..1500 {
                assert_eq!(after[i], durable[i], "byte {i}");
            }
        }
    }

    /// An unsynced truncate may be undone, and only then do the cut bytes come back.
    #[test]
    fn an_unsynced_truncate_may_be_undone() {
        let durable: Vec<u8> = (0..1000).map(|i| (i % 200) as u8 + 1).collect();
        let current = durable[..300].to_vec();
        let outcomes = fates(&current, &durable, Some(300));
        assert!(outcomes.iter().all(|a| a == &current || a == &durable));
        assert!(outcomes.iter().any(|a| a == &durable));
        assert!(outcomes.iter().any(|a| a == &current));
    }
}
