//! The recovery decision table of `docs/FORMAT.md`, as code.
//!
//! A leaf module: it imports only configuration and ids, so the write path, recovery, the
//! error types and the reports can all name a [`Case`] without importing each other.
//!
//! Recovery reduces what it finds in each segment to an [`Inputs`] value; exactly one [`Case`]
//! applies to every possible input (a test walks them all), and the policy turns the case into an
//! [`Action`].

use core::fmt;

use crate::config::RecoveryPolicy;
use crate::storage::SegmentId;

/// Whether a segment has a successor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// The last segment: its tail may be torn by an ordinary crash.
    Newest,
    /// A successor exists, so this segment was synced whole before the successor was created.
    Sealed,
    /// A successor exists, created before this segment was durable (its header's `early`
    /// flag): this segment's end is judged by `ack_gap` evidence, like the newest one's.
    EarlySealed,
}

/// What the segment header looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderState {
    /// Verified and consistent with the log.
    Valid,
    /// Invalid, and nothing but zeros after the header's place (or nothing at all): a creation
    /// that did not complete. Nothing is written after a header until the header is durable.
    Unfinished,
    /// Invalid (checksum, magic or impossible fields) in a longer file.
    Invalid,
    /// Valid checksum, newer format version.
    NewerVersion,
    /// Valid in every field, but its checksum algorithm is not built in (walden-core features
    /// `crc32`, `crc64`).
    ChecksumNotBuiltIn,
    /// Valid, but another log's id, a wrong segment id, or a first LSN that does not continue
    /// the previous segment.
    Foreign,
}

/// Whether segment ids are consecutive up to this segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sequence {
    /// No id is missing before this segment.
    Continuous,
    /// An id is missing right before this segment.
    Gap,
    /// The segment's seal names a successor that does not exist (the newest segment was
    /// removed after it was created).
    SuccessorMissing,
}

/// How the record scan ended (meaningful only for a valid header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanState {
    /// Records end where they should; only zeros (if anything) follow.
    Clean,
    /// Invalid bytes where a record should be, or a sealed segment ending early.
    Invalid,
    /// A record whose header verifies is longer than the configured `max_record_size`.
    Oversized,
}

/// What lies after invalid bytes (meaningful only for an invalid scan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// No valid record after the invalid bytes.
    None,
    /// Valid records follow, but none proves the damaged LSN was ever durable.
    Unacknowledged,
    /// A later record (or the successor segment) proves the damaged LSN was durable.
    Acknowledged,
}

/// Everything recovery knows about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inputs {
    /// Newest or sealed.
    pub position: Position,
    /// Header state.
    pub header: HeaderState,
    /// Id sequence.
    pub sequence: Sequence,
    /// Record scan result.
    pub scan: ScanState,
    /// Evidence after invalid bytes.
    pub evidence: Evidence,
}

impl Inputs {
    /// What the listing and the header say about segment `id` (listed right after `prev`),
    /// before any scan: clean, no evidence, until the scan says otherwise.
    pub(crate) fn before_scan(
        prev: Option<SegmentId>,
        id: SegmentId,
        newest: bool,
        header: HeaderState,
    ) -> Self {
        Self {
            position: if newest {
                Position::Newest
            } else {
                Position::Sealed
            },
            header,
            sequence: match prev {
                Some(p) if id != p.wrapping_add(1) => Sequence::Gap,
                _ => Sequence::Continuous,
            },
            scan: ScanState::Clean,
            evidence: Evidence::None,
        }
    }
}

/// The named recovery cases. See the table in `docs/FORMAT.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Case {
    /// Nothing wrong.
    Clean,
    /// Invalid bytes at the end of the newest segment that no later record vouches for (or of
    /// a segment whose successor was created early, see `docs/FORMAT.md`, "Early successors").
    TornTail,
    /// Invalid bytes in the newest segment at an LSN a later record proves was durable.
    MidLogCorruption,
    /// A sealed segment is damaged or ends before its successor begins.
    SealedSegmentDamaged,
    /// The newest segment's creation did not complete (header short or zero).
    TornCreation,
    /// A segment header is damaged.
    DamagedHeader,
    /// A segment was written by a newer format version.
    NewerVersion,
    /// A segment's header is valid but names a checksum algorithm this build does not have
    /// (walden-core features `crc32`, `crc64`): not damage. Every policy refuses and changes
    /// nothing; a build with the algorithm opens the log.
    ChecksumNotBuiltIn,
    /// A segment belongs to another log or does not continue the previous one.
    ForeignSegment,
    /// A segment id is missing from the sequence.
    MissingSegment,
    /// The newest segment is missing: the last segment's seal names a successor that is gone.
    MissingNewestSegment,
    /// A valid record is longer than the configured `max_record_size`: a configuration error
    /// (reopen with the limit the log was written with), not damage.
    RecordTooLarge,
}

/// What recovery does about a case under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    Keep,
    /// Truncate the newest segment after its last valid record (never-acknowledged bytes).
    CutTornTail,
    /// Rewrite the newest segment's header from scratch.
    RewriteHeader,
    /// Refuse to open.
    Fail,
    /// Salvage: truncate this segment after its last valid record and drop every later one.
    SalvageCut,
    /// Salvage: drop this segment and every later one.
    SalvageDrop,
}

impl Case {
    /// Every case, in table order.
    pub(crate) const ALL: [Case; 12] = [
        Case::Clean,
        Case::TornTail,
        Case::MidLogCorruption,
        Case::SealedSegmentDamaged,
        Case::TornCreation,
        Case::DamagedHeader,
        Case::NewerVersion,
        Case::ChecksumNotBuiltIn,
        Case::ForeignSegment,
        Case::MissingSegment,
        Case::MissingNewestSegment,
        Case::RecordTooLarge,
    ];

    /// Whether this case describes `i`. Exactly one case applies to every input.
    // Never inlined on 32-bit targets: `classify` unrolled over `ALL` copied it once per case
    // (docs/EMBEDDED.md).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub(crate) fn applies(self, i: &Inputs) -> bool {
        use HeaderState as H;
        let cont = i.sequence == Sequence::Continuous;
        let valid = i.header == H::Valid;
        let newest = i.position == Position::Newest;
        // Whether a damaged end is judged by evidence (newest, or early-sealed).
        let weighed = i.position != Position::Sealed;
        let acknowledged = i.evidence == Evidence::Acknowledged;
        let invalid_scan = i.scan == ScanState::Invalid;
        match self {
            Case::Clean => cont && valid && i.scan == ScanState::Clean,
            Case::TornTail => cont && valid && weighed && invalid_scan && !acknowledged,
            Case::MidLogCorruption => cont && valid && newest && invalid_scan && acknowledged,
            Case::SealedSegmentDamaged => {
                cont && valid && !newest && invalid_scan && (!weighed || acknowledged)
            }
            Case::RecordTooLarge => cont && valid && i.scan == ScanState::Oversized,
            Case::TornCreation => cont && newest && i.header == H::Unfinished,
            Case::DamagedHeader => {
                cont && (i.header == H::Invalid || (i.header == H::Unfinished && !newest))
            }
            Case::NewerVersion => cont && i.header == H::NewerVersion,
            Case::ChecksumNotBuiltIn => cont && i.header == H::ChecksumNotBuiltIn,
            Case::ForeignSegment => cont && i.header == H::Foreign,
            Case::MissingSegment => i.sequence == Sequence::Gap,
            Case::MissingNewestSegment => i.sequence == Sequence::SuccessorMissing,
        }
    }

    /// The one case that applies to `i`.
    pub(crate) fn classify(i: &Inputs) -> Case {
        Case::ALL
            .into_iter()
            .find(|c| c.applies(i))
            .unwrap_or(Case::MissingSegment)
    }

    /// What the policy does about this case.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub(crate) fn action(self, policy: RecoveryPolicy) -> Action {
        use RecoveryPolicy::{Salvage, Strict, TolerateTornTail};
        match (self, policy) {
            (Case::Clean, _) => Action::Keep,
            (Case::TornTail, Strict) => Action::Fail,
            (Case::TornTail, TolerateTornTail | Salvage) => Action::CutTornTail,
            (Case::TornCreation, Strict) => Action::Fail,
            (Case::TornCreation, TolerateTornTail | Salvage) => Action::RewriteHeader,
            (
                Case::MidLogCorruption | Case::SealedSegmentDamaged | Case::MissingNewestSegment,
                Salvage,
            ) => Action::SalvageCut,
            (Case::DamagedHeader | Case::ForeignSegment | Case::MissingSegment, Salvage) => {
                Action::SalvageDrop
            }
            // `RecordTooLarge`, `ChecksumNotBuiltIn` and `NewerVersion` among them, under every
            // policy: the medium may be fine (a newer build reads it), so nothing is cut or
            // dropped for them.
            (_, _) => Action::Fail,
        }
    }

    /// Whether the case means damage to data that may have been acknowledged (as opposed to
    /// the effects of an ordinary crash, or to what this build or configuration cannot read).
    pub fn is_corruption(self) -> bool {
        !matches!(
            self,
            Case::Clean
                | Case::TornTail
                | Case::TornCreation
                | Case::RecordTooLarge
                | Case::ChecksumNotBuiltIn
                | Case::NewerVersion
        )
    }

    /// The case's name as in the table.
    pub const fn name(self) -> &'static str {
        match self {
            Case::Clean => "Clean",
            Case::TornTail => "TornTail",
            Case::MidLogCorruption => "MidLogCorruption",
            Case::SealedSegmentDamaged => "SealedSegmentDamaged",
            Case::TornCreation => "TornCreation",
            Case::DamagedHeader => "DamagedHeader",
            Case::NewerVersion => "NewerVersion",
            Case::ChecksumNotBuiltIn => "ChecksumNotBuiltIn",
            Case::ForeignSegment => "ForeignSegment",
            Case::MissingSegment => "MissingSegment",
            Case::MissingNewestSegment => "MissingNewestSegment",
            Case::RecordTooLarge => "RecordTooLarge",
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_input() -> impl Iterator<Item = Inputs> {
        use Evidence as E;
        use HeaderState as H;
        [Position::Newest, Position::Sealed, Position::EarlySealed]
            .into_iter()
            .flat_map(|position| {
                [
                    H::Valid,
                    H::Unfinished,
                    H::Invalid,
                    H::NewerVersion,
                    H::ChecksumNotBuiltIn,
                    H::Foreign,
                ]
                .into_iter()
                .flat_map(move |header| {
                    [
                        Sequence::Continuous,
                        Sequence::Gap,
                        Sequence::SuccessorMissing,
                    ]
                    .into_iter()
                    .flat_map(move |sequence| {
                        [ScanState::Clean, ScanState::Invalid, ScanState::Oversized]
                            .into_iter()
                            .flat_map(move |scan| {
                                [E::None, E::Unacknowledged, E::Acknowledged]
                                    .into_iter()
                                    .map(move |evidence| Inputs {
                                        position,
                                        header,
                                        sequence,
                                        scan,
                                        evidence,
                                    })
                            })
                    })
                })
            })
    }

    #[test]
    fn every_input_matches_exactly_one_case() {
        let mut seen = [false; Case::ALL.len()];
        let mut n = 0;
        for i in every_input() {
            let matching = Case::ALL.iter().filter(|c| c.applies(&i)).count();
            assert_eq!(matching, 1, "{i:?} matches {matching} cases");
            seen[Case::ALL
                .iter()
                .position(|c| *c == Case::classify(&i))
                .unwrap()] = true;
            n += 1;
        }
        assert_eq!(n, 3 * 6 * 3 * 3 * 3);
        assert!(seen.iter().all(|s| *s), "every case is reachable");
    }

    #[test]
    fn only_torn_tail_and_torn_creation_are_repaired_by_default() {
        for case in Case::ALL {
            let a = case.action(RecoveryPolicy::TolerateTornTail);
            match case {
                Case::Clean => assert_eq!(a, Action::Keep),
                Case::TornTail => assert_eq!(a, Action::CutTornTail),
                Case::TornCreation => assert_eq!(a, Action::RewriteHeader),
                _ => assert_eq!(a, Action::Fail, "{case}"),
            }
            // Strict refuses everything but a clean log; Salvage refuses nothing but a
            // configuration error or a segment this build cannot read, which no policy may
            // "repair" (the medium may be fine).
            let not_damage = matches!(
                case,
                Case::RecordTooLarge | Case::ChecksumNotBuiltIn | Case::NewerVersion
            );
            assert_eq!(
                case.action(RecoveryPolicy::Strict) == Action::Keep,
                case == Case::Clean
            );
            assert_eq!(
                case.action(RecoveryPolicy::Salvage) == Action::Fail,
                not_damage
            );
            assert_eq!(case.is_corruption(), a == Action::Fail && !not_damage);
        }
    }

    #[test]
    fn an_early_sealed_segment_is_judged_by_evidence_a_sealed_one_is_not() {
        let at = |position, evidence| {
            Case::classify(&Inputs {
                position,
                header: HeaderState::Valid,
                sequence: Sequence::Continuous,
                scan: ScanState::Invalid,
                evidence,
            })
        };
        for evidence in [Evidence::None, Evidence::Unacknowledged] {
            assert_eq!(at(Position::EarlySealed, evidence), Case::TornTail);
            assert_eq!(at(Position::Newest, evidence), Case::TornTail);
            assert_eq!(at(Position::Sealed, evidence), Case::SealedSegmentDamaged);
        }
        let acked = Evidence::Acknowledged;
        assert_eq!(at(Position::EarlySealed, acked), Case::SealedSegmentDamaged);
        assert_eq!(at(Position::Newest, acked), Case::MidLogCorruption);
        assert_eq!(at(Position::Sealed, acked), Case::SealedSegmentDamaged);
    }

    #[test]
    fn a_case_displays_as_its_name_in_the_table() {
        use std::string::ToString;
        for case in Case::ALL {
            assert_eq!(case.to_string(), case.name());
        }
        assert_eq!(Case::MidLogCorruption.to_string(), "MidLogCorruption");
    }

    #[test]
    fn the_documented_table_lists_every_case_with_its_actions() {
        let doc = include_str!("../../docs/FORMAT.md");
        let start = doc.find("<!-- recovery-table -->").unwrap();
        let table = &doc[start..start + doc[start..].find("<!-- end -->").unwrap()];
        for case in Case::ALL {
            let row = table
                .lines()
                .find(|l| l.starts_with(&std::format!("| `{}` |", case.name())))
                .unwrap_or_else(|| panic!("{case} missing from FORMAT.md"));
            let cells: std::vec::Vec<&str> = row.split('|').map(str::trim).collect();
            for (policy, cell) in [
                (RecoveryPolicy::Strict, cells[3]),
                (RecoveryPolicy::TolerateTornTail, cells[4]),
                (RecoveryPolicy::Salvage, cells[5]),
            ] {
                let documented_fail = cell == "error";
                assert_eq!(
                    case.action(policy) == Action::Fail,
                    documented_fail,
                    "{case} {policy:?}"
                );
            }
        }
    }
}

/// The log's recorded first segment is missing: segments the log never removed are gone from
/// its front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MissingFront {
    /// The first segment the log records (its start slots, or the latest `first_segment` of a
    /// segment header).
    pub expected: SegmentId,
    /// The oldest segment that exists.
    pub found: SegmentId,
}
