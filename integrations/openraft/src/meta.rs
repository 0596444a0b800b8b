//! The vote, the committed log id and the last purged log id, kept in a second, small Walden
//! log beside the entries.
//!
//! Every record of the meta log holds the **whole** state, so the newest record that survives
//! is the state. Why a log rather than a file rewritten with write-temp + `fsync` + rename +
//! directory `fsync`:
//!
//! * **One `fdatasync` per durable change** instead of four syscalls that each wait for the
//!   disk (file sync, rename, directory sync, plus the create). A vote is saved at every
//!   election and must be durable before openraft proceeds.
//! * **Non-durable updates are free and still safe.** The committed log id changes with every
//!   commit and need not be durable (openraft only uses it to re-apply sooner after a restart),
//!   so it is appended without a sync. Walden recovers a prefix of the records, and each record
//!   carries the newest vote and purge point known when it was written, so a surviving record
//!   never holds an older vote than one that was reported durable.
//! * **The crash behaviour is Walden's**, checked by its crash explorer: checksummed records, a
//!   torn tail cut, nothing acknowledged lost.
//!
//! Old records are dropped by `truncate_front` once a newer one is durable (whole segments;
//! the segment holding the newest durable record is always kept).

use openraft::{LogId, NodeId, Vote};
use serde::{Deserialize, Serialize};

/// The first byte of every meta record.
pub(crate) const META_VERSION: u8 = 1;

/// The durable state besides the entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Meta<NID: NodeId> {
    pub(crate) vote: Option<Vote<NID>>,
    pub(crate) committed: Option<LogId<NID>>,
    pub(crate) purged: Option<LogId<NID>>,
}

impl<NID: NodeId> Meta<NID> {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut out = vec![META_VERSION];
        out.extend(postcard::to_allocvec(self)?);
        Ok(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        match bytes.split_first() {
            Some((&META_VERSION, rest)) => match postcard::take_from_bytes(rest) {
                Ok((meta, [])) => Ok(meta),
                // A record this version did not write: refused rather than half read.
                Ok(_) => Err("meta record has bytes after the state"),
                Err(_) => Err("meta record does not decode"),
            },
            Some(_) => Err("meta record has an unknown version"),
            None => Err("meta record is empty"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    #[test]
    fn meta_round_trips_and_rejects_bad_bytes() {
        let m = Meta::<u64> {
            vote: Some(Vote::new_committed(3, 2)),
            committed: Some(LogId::new(CommittedLeaderId::new(3, 2), 17)),
            purged: None,
        };
        let bytes = m.encode().unwrap();
        assert_eq!(Meta::decode(&bytes), Ok(m));
        assert!(Meta::<u64>::decode(&[]).is_err());
        assert!(Meta::<u64>::decode(&[9, 1, 2]).is_err());
        assert!(Meta::<u64>::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn meta_with_trailing_bytes_is_refused() {
        let mut bytes = Meta::<u64>::default().encode().unwrap();
        bytes.extend_from_slice(&[0xAB, 0xCD]);
        assert_eq!(
            Meta::<u64>::decode(&bytes),
            Err("meta record has bytes after the state")
        );
    }
}
