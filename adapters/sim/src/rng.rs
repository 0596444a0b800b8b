//! The simulator's only source of randomness: a seeded SplitMix64 generator.
//!
//! No OS entropy and no clock, so that one `u64` seed replays a run bit for bit.

/// A small, fast, seedable generator (SplitMix64, Steele, Lea and Flood 2014).
///
/// Good enough to pick crash plans and garbage bytes; not for cryptography.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator whose whole output is determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one purpose within a seeded run, so that streams for different purposes
    /// (say, the garbage of effect 3 and the garbage of effect 4) do not overlap.
    pub const fn derived(seed: u64, stream: u64) -> Self {
        Self::new(mix(seed ^ mix(stream.wrapping_add(0x5157_4c44_454e))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A value in `0..bound`, or 0 when `bound` is 0. Slightly biased for huge bounds, which
    /// does not matter for picking faults.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// `true` with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The SplitMix64 output function: a bijective mix of 64 bits, also used to combine seeds.
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash behind the simulators' `fingerprint()`s. The explorers count distinct crash states
/// by it, hashing every durable byte of every state, so it must be fast and must spread any
/// difference (one torn sector) over all 64 bits; only equality of two fingerprints means
/// anything. Words go through the SplitMix64 mix; byte strings go 16 bytes per folded 128-bit
/// multiply (as in wyhash and foldhash), with the running hash also added back in, so that a
/// product of zero cannot erase what came before.
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;

    /// A hash started from `seed`.
    pub(crate) const fn new(seed: u64) -> Self {
        Self(mix(seed))
    }

    /// Absorbs one word.
    pub(crate) fn word(&mut self, word: u64) {
        self.0 = mix(self.0.wrapping_mul(0x0000_0100_0000_01b3) ^ word)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
    }

    /// Absorbs `bytes` and their length (so that the zero padding of the last block is
    /// unambiguous).
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut hash = self.0;
        let mut absorb = |block: &[u8]| {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&block[..8]);
            b.copy_from_slice(&block[8..16]);
            let (a, b) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
            hash = fold(a ^ hash ^ Self::K0, b ^ Self::K1).wrapping_add(hash.rotate_left(23));
        };
        let mut blocks = bytes.chunks_exact(16);
        for block in &mut blocks {
            absorb(block);
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            absorb(&last);
        }
        self.0 = mix(hash);
    }

    /// The hash of everything absorbed.
    pub(crate) const fn finish(&self) -> u64 {
        self.0
    }
}

/// The 128-bit product of `a` and `b`, its halves xored.
const fn fold(a: u64, b: u64) -> u64 {
    let product = (a as u128).wrapping_mul(b as u128);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn matches_reference_splitmix64() {
        // First outputs of the reference C implementation seeded with 0.
        let mut rng = SimRng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn derived_streams_differ() {
        let mut a = SimRng::derived(7, 1);
        let mut b = SimRng::derived(7, 2);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SimRng::new(9);
        for bound in 1..50 {
            assert!(rng.below(bound) < bound);
        }
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn fill_handles_odd_lengths() {
        let mut a = [0u8; 13];
        SimRng::new(3).fill(&mut a);
        let mut b = [0u8; 16];
        SimRng::new(3).fill(&mut b);
        assert_eq!(a, b[..13]);
    }
}
