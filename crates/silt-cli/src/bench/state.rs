//! Deterministic keys and values, and the expected-state file behind `silt bench verify`.
//!
//! Every value a bench run writes is a function of the key index and the run's `--seed`
//! ([`fill_value`]), and whether a write of key `k` is a put or a delete is a function of
//! `k`, the seed and `--delete-ratio` ([`is_delete`]). So every write a run makes to one key is
//! the same operation with the same bytes, whatever the interleaving of the clients, and the
//! key's state after the run is known exactly: untouched, the run's value, or absent.
//!
//! `--state FILE` keeps that knowledge across runs: for each key, which run's value it holds
//! (or none). It is loaded before a run (when the file exists), updated with the keys the run
//! touched, and saved after the database closed; `silt bench verify --state FILE` reads keys
//! back and compares.
//!
//! File format (little endian): `SILTBST1`, key size (u32), key space (u64), run count (u32),
//! per run its seed (u64) and value size (u32), then one byte per key: 0 = absent (never
//! written, or deleted), `i` = the value of run `i` (1-based).

use std::path::Path;

use anyhow::{bail, Context, Result};

const MAGIC: &[u8; 8] = b"SILTBST1";
/// Runs one state file can describe (one byte per key names the run).
pub const MAX_RUNS: usize = 255;

/// `SplitMix64` finaliser: a bijective 64-bit mix.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Number of decimal digits of `n`.
pub fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Key `i`: `k` then `i` zero-padded to `size` bytes in all.
pub fn key(i: u64, size: usize) -> String {
    format!("k{i:0>w$}", w = size - 1)
}

/// The value run `seed` writes to key `k`: `buf.len()` pseudo-random (incompressible) bytes.
pub fn fill_value(k: u64, seed: u64, buf: &mut [u8]) {
    let mut s = mix(k ^ mix(seed ^ 0x0005_eed0_f0a1_u64));
    for chunk in buf.chunks_mut(8) {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let w = mix(s).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Whether run `seed`'s writes of key `k` are deletes: true for a fraction `ratio` of keys.
pub fn is_delete(k: u64, seed: u64, ratio: f64) -> bool {
    if ratio <= 0.0 {
        return false;
    }
    let u = (mix(k ^ mix(seed ^ 0x00de_1e7e)) >> 11) as f64 / (1u64 << 53) as f64;
    u < ratio
}

/// One run recorded in a state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    pub seed: u64,
    pub value_size: usize,
}

/// What every key should read back as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub key_size: usize,
    pub runs: Vec<RunInfo>,
    /// Per key: 0 = absent, `i` = the value of `runs[i - 1]`.
    pub keys: Vec<u8>,
}

impl State {
    pub fn new(key_size: usize, key_space: u64) -> State {
        State {
            key_size,
            runs: Vec::new(),
            keys: vec![0; usize::try_from(key_space).unwrap_or(usize::MAX)],
        }
    }

    pub fn key_space(&self) -> u64 {
        self.keys.len() as u64
    }

    /// The expected value of key `k`, or `None` when it should be absent.
    pub fn expected(&self, k: u64) -> Option<Vec<u8>> {
        let run = *self.keys.get(usize::try_from(k).ok()?)?;
        let info = self.runs.get(usize::from(run).checked_sub(1)?)?;
        let mut v = vec![0; info.value_size];
        fill_value(k, info.seed, &mut v);
        Some(v)
    }

    /// The 1-based run whose value `got` is for key `k`, if any run's.
    pub fn which_run(&self, k: u64, got: &[u8]) -> Option<usize> {
        self.runs
            .iter()
            .position(|r| {
                let mut v = vec![0; r.value_size];
                fill_value(k, r.seed, &mut v);
                v == got
            })
            .map(|i| i + 1)
    }

    /// Load `path`, or a fresh state when it does not exist. Checks the key size, grows the key
    /// space to `key_space`, and refuses a seed already recorded (its values would be
    /// indistinguishable from the earlier run's).
    pub fn load_for_run(path: &Path, key_size: usize, key_space: u64, seed: u64) -> Result<State> {
        let mut st = if path.exists() {
            State::load(path)?
        } else {
            State::new(key_size, key_space)
        };
        if st.key_size != key_size {
            bail!(
                "state file {} has {} B keys, the run {key_size} B keys",
                path.display(),
                st.key_size
            );
        }
        if st.runs.iter().any(|r| r.seed == seed) {
            bail!(
                "state file {} already has a run with seed {seed}: give each run its own --seed",
                path.display()
            );
        }
        if st.runs.len() >= MAX_RUNS {
            bail!("state file {} is full ({MAX_RUNS} runs)", path.display());
        }
        if key_space > st.key_space() {
            st.keys
                .resize(usize::try_from(key_space).unwrap_or(usize::MAX), 0);
        }
        Ok(st)
    }

    pub fn load(path: &Path) -> Result<State> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::decode(&bytes).with_context(|| format!("state file {}", path.display()))
    }

    fn decode(b: &[u8]) -> Result<State> {
        let mut pos = 0;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = b.get(pos..pos + n).context("truncated")?;
            pos += n;
            Ok(s)
        };
        if take(8)? != MAGIC {
            bail!("not a silt bench state file");
        }
        let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
        let u64_at = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        let key_size = u32_at(take(4)?) as usize;
        let key_space = u64_at(take(8)?);
        let n_runs = u32_at(take(4)?) as usize;
        if n_runs > MAX_RUNS {
            bail!("{n_runs} runs");
        }
        let mut runs = Vec::with_capacity(n_runs);
        for _ in 0..n_runs {
            let seed = u64_at(take(8)?);
            let value_size = u32_at(take(4)?) as usize;
            runs.push(RunInfo { seed, value_size });
        }
        let keys = take(usize::try_from(key_space)?)?.to_vec();
        if keys.iter().any(|&r| usize::from(r) > n_runs) {
            bail!("a key names a run that is not recorded");
        }
        Ok(State {
            key_size,
            runs,
            keys,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.runs.len() * 12 + self.keys.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.key_size as u32).to_le_bytes());
        out.extend_from_slice(&self.key_space().to_le_bytes());
        out.extend_from_slice(&(self.runs.len() as u32).to_le_bytes());
        for r in &self.runs {
            out.extend_from_slice(&r.seed.to_le_bytes());
            out.extend_from_slice(&(r.value_size as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.keys);
        out
    }

    /// Write the file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.encode())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_fixed_size() {
        assert_eq!(key(7, 6), "k00007");
        assert_eq!(key(99_999, 16).len(), 16);
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(99_999), 5);
    }

    #[test]
    fn values_are_deterministic_and_differ_by_seed_and_key() {
        let (mut a, mut b, mut c) = (vec![0; 100], vec![0; 100], vec![0; 100]);
        fill_value(7, 1, &mut a);
        fill_value(7, 1, &mut b);
        fill_value(7, 2, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        fill_value(8, 1, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn delete_fraction_is_close_to_ratio() {
        let n = (0..100_000).filter(|&k| is_delete(k, 3, 0.1)).count();
        assert!((9_000..11_000).contains(&n), "{n}");
        assert!(!(0..1000).any(|k| is_delete(k, 3, 0.0)));
    }

    #[test]
    fn state_round_trips() {
        let mut s = State::new(16, 10);
        s.runs.push(RunInfo {
            seed: 5,
            value_size: 20,
        });
        s.keys[3] = 1;
        let back = State::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.expected(2), None);
        let v = back.expected(3).unwrap();
        assert_eq!(v.len(), 20);
        assert_eq!(back.which_run(3, &v), Some(1));
        assert!(State::decode(&s.encode()[..20]).is_err());
    }
}
