//! What a result was computed from. Every checkpoint sidecar and every stage file of a run
//! stores one; a result whose fingerprint differs from the current run's is never reused
//! (docs/design.md "Resume must know its inputs").

use serde::{Deserialize, Serialize};

use crate::Preset;

/// The inputs of a run: the data, its split, the seed, the preset and the image side.
///
/// Build it once per run (the root crate's `data` module does, from the preprocessed slices
/// and the split manifest) and hand it to every trainer through `RunOptions::fingerprint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Where the slices came from (a folder or the phantom settings), for people to read.
    pub data_source: String,
    /// BLAKE3 of every slice's path, label and preprocessed pixels, in order: other files,
    /// other preprocessing or another image side give another hash.
    pub data_hash: String,
    /// Image side in pixels.
    pub image_size: usize,
    /// Train / val / test fractions of the split.
    pub split_fractions: [f64; 3],
    /// BLAKE3 of the split manifest (`split.json`): which slice went where.
    pub split_hash: String,
    /// The run's seed.
    pub seed: u64,
    /// The model preset (`None` for configs built by hand).
    pub preset: Option<Preset>,
}

impl Fingerprint {
    /// The first field in which `self` (what a result was computed from, "there") differs from
    /// `now` ("here"), as `"seed is 0 there but 1 here"`; `None` when they agree.
    pub fn difference(&self, now: &Fingerprint) -> Option<String> {
        let (a, b) = (serde_json::to_value(self).expect("serialises"), serde_json::to_value(now).expect("serialises"));
        let (a, b) = (a.as_object().expect("a struct"), b.as_object().expect("a struct"));
        // Fields in declaration order (serde_json's map is sorted, so walk a fixed list).
        const ORDER: [&str; 7] = ["data_source", "data_hash", "image_size", "split_fractions", "split_hash", "seed", "preset"];
        ORDER.iter().find(|k| a.get(**k) != b.get(**k)).map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
            format!("{k} is {} there but {} here", show(a.get(*k)), show(b.get(*k)))
        })
    }
}
