//! Bloom filters over user keys, with a stable 64-bit hash and double hashing.
//!
//! Layout: `bits[m / 8] | k u8`. Probe `i` (0-based, `i < k`) of a key with
//! hash `h` sets bit `(lo + i * hi) mod m`, where `lo`/`hi` are the low/high
//! 32 bits of `h`; bit `b` lives in byte `b / 8` at position `b % 8`.
//! An empty byte string is the "match everything" filter.

use bytes::Bytes;

use crate::error::{FormatError, Result};

const WHAT: &str = "bloom filter";

/// Largest supported probe count.
pub const MAX_PROBES: u32 = 30;

/// Bits-per-key values above this are clamped.
pub const MAX_BITS_PER_KEY: u32 = 100;

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;

fn mix(w: u64) -> u64 {
    w.wrapping_mul(P2).rotate_left(31).wrapping_mul(P1)
}

fn round(h: u64, w: u64) -> u64 {
    (h ^ mix(w))
        .rotate_left(27)
        .wrapping_mul(P1)
        .wrapping_add(P2)
}

/// The stable 64-bit hash used by bloom filters ("silt-hash64").
///
/// `h = P3 ^ (len * P1)`; for each 8-byte little-endian word `w` (the final,
/// possibly empty, partial word zero-padded) `h = rotl(h ^ mix(w), 27) * P1 + P2`
/// with `mix(w) = rotl(w * P2, 31) * P1`; finally the `MurmurHash3` `fmix64`
/// finalizer. All arithmetic wraps. Constants are documented in `docs/format.md`.
pub fn hash64(data: &[u8]) -> u64 {
    let mut h = P3 ^ (data.len() as u64).wrapping_mul(P1);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = round(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    h = round(h, u64::from_le_bytes(w));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Number of probes for a bits-per-key budget: `round(bits_per_key * 0.69)`,
/// clamped to `1..=30`.
pub fn probes_for(bits_per_key: u32) -> u32 {
    ((bits_per_key.min(MAX_BITS_PER_KEY) * 69 + 50) / 100).clamp(1, MAX_PROBES)
}

fn probe_bits(h: u64, k: u32, m: u64) -> impl Iterator<Item = u64> {
    let lo = h & 0xffff_ffff;
    let hi = h >> 32;
    (0..u64::from(k)).map(move |i| (lo + i * hi) % m)
}

/// Collects key hashes and produces a filter.
#[derive(Debug, Clone)]
pub struct BloomBuilder {
    bits_per_key: u32,
    hashes: Vec<u64>,
}

impl BloomBuilder {
    /// A builder spending `bits_per_key` bits per added key (clamped to 100).
    /// `0` produces the empty, match-everything filter.
    pub fn new(bits_per_key: u32) -> Self {
        BloomBuilder {
            bits_per_key: bits_per_key.min(MAX_BITS_PER_KEY),
            hashes: Vec::new(),
        }
    }

    /// Adds a user key. Adding the same key twice is harmless but wastes bits.
    pub fn add_key(&mut self, key: &[u8]) {
        if self.bits_per_key > 0 {
            self.hashes.push(hash64(key));
        }
    }

    /// Size of the filter `finish` would produce now.
    pub fn estimated_size(&self) -> usize {
        if self.bits_per_key == 0 {
            return 0;
        }
        (self.hashes.len() * self.bits_per_key as usize)
            .max(64)
            .div_ceil(8)
            + 1
    }

    /// Encodes the filter (`bits | k`). At least 64 bits are used.
    pub fn finish(&self) -> Vec<u8> {
        if self.bits_per_key == 0 {
            return Vec::new();
        }
        let nbytes = self.estimated_size() - 1;
        let m = nbytes as u64 * 8;
        let k = probes_for(self.bits_per_key);
        let mut out = vec![0u8; nbytes + 1];
        for &h in &self.hashes {
            for bit in probe_bits(h, k, m) {
                out[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        out[nbytes] = k as u8;
        out
    }
}

/// A decoded bloom filter.
#[derive(Clone, Debug)]
pub struct BloomFilter {
    raw: Bytes,
    k: u32,
}

impl BloomFilter {
    /// Validates an encoded filter. Empty input is the match-everything filter.
    pub fn decode(raw: Bytes) -> Result<BloomFilter> {
        let Some((&k, bits)) = raw.split_last() else {
            return Ok(BloomFilter { raw, k: 0 });
        };
        let k = u32::from(k);
        if bits.is_empty() || k == 0 || k > MAX_PROBES {
            return Err(FormatError::corrupt(
                WHAT,
                format!("{} bit bytes with {k} probes", bits.len()),
            ));
        }
        Ok(BloomFilter { raw, k })
    }

    /// False only if the key was certainly not added.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        if self.k == 0 {
            return true;
        }
        let bits = &self.raw[..self.raw.len() - 1];
        let m = bits.len() as u64 * 8;
        probe_bits(hash64(key), self.k, m).all(|bit| {
            bits.get((bit / 8) as usize)
                .is_some_and(|b| b & (1 << (bit % 8)) != 0)
        })
    }

    /// Encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.raw.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Vec<u8> {
        format!("key-{i:08}").into_bytes()
    }

    fn filter(keys: impl Iterator<Item = Vec<u8>>, bpk: u32) -> BloomFilter {
        let mut b = BloomBuilder::new(bpk);
        for k in keys {
            b.add_key(&k);
        }
        let raw = b.finish();
        assert_eq!(raw.len(), b.estimated_size());
        BloomFilter::decode(Bytes::from(raw)).unwrap()
    }

    #[test]
    fn no_false_negatives_and_low_fp_rate() {
        let f = filter((0..10_000).map(key), 10);
        assert_eq!(f.size_bytes(), 12_501);
        assert!((0..10_000).all(|i| f.may_contain(&key(i))));
        let fp = (10_000..20_000).filter(|&i| f.may_contain(&key(i))).count();
        // Theory for 10 bits/key and k = 7: about 0.82%.
        assert!(fp < 300, "false positives: {fp} / 10000");
        assert!(fp > 10, "suspiciously few false positives: {fp}");
    }

    #[test]
    fn zero_bits_per_key_matches_everything() {
        let f = filter((0..10).map(key), 0);
        assert_eq!(f.size_bytes(), 0);
        assert!(f.may_contain(b"anything"));
    }

    #[test]
    fn empty_key_set_matches_nothing() {
        let f = filter(std::iter::empty(), 10);
        assert_eq!(f.size_bytes(), 9);
        assert!(!f.may_contain(b"x"));
    }

    #[test]
    fn probes() {
        assert_eq!(probes_for(10), 7);
        assert_eq!(probes_for(1), 1);
        assert_eq!(probes_for(u32::MAX), 30);
    }

    #[test]
    fn hash_and_filter_snapshot() {
        assert_eq!(hash64(b""), 0x62ec_b34b_0fc7_41b0);
        assert_eq!(hash64(b"silt"), 0xd096_071c_e867_b2d0);
        assert_eq!(hash64(b"0123456789abcdef!"), 0x76ea_2eac_0aac_2291);
        let mut b = BloomBuilder::new(10);
        b.add_key(b"a");
        // One key, 64 bits, k = 7.
        assert_eq!(crate::hex::encode(&b.finish()), "808000808080808007");
    }

    #[test]
    fn bad_filters_rejected() {
        for raw in [&[7u8][..], &[0xff, 0], &[0xff, 31]] {
            assert!(BloomFilter::decode(Bytes::copy_from_slice(raw))
                .unwrap_err()
                .is_corrupt());
        }
    }
}
