//! Pixel-level scores against a ground-truth mask: Dice at a threshold and the best Dice over
//! all thresholds (an upper bound, as Baur et al.'s ⌈Dice⌉ in their anomaly-segmentation
//! comparison: the threshold is chosen on the data it is scored on). Pixel-level AUROC is
//! [`crate::auroc`] on the pixels' scores.
//!
//! ```
//! use mri_metrics::segmentation::{best_dice, dice_at};
//! let scores = [0.9, 0.8, 0.7, 0.2, 0.1];
//! let truth = [true, true, false, false, false];
//! assert_eq!(dice_at(&scores, &truth, 0.75).unwrap(), 1.0);
//! let best = best_dice(&scores, &truth).unwrap();
//! assert_eq!((best.dice, best.threshold), (1.0, 0.8));
//! ```

use serde::{Deserialize, Serialize};

use crate::MetricsError;

fn check(scores: &[f32], truth: &[bool]) -> Result<(), MetricsError> {
    if scores.len() != truth.len() {
        return Err(MetricsError::LengthMismatch { what: "pixel scores", expected: truth.len(), got: scores.len() });
    }
    if scores.is_empty() {
        return Err(MetricsError::Empty);
    }
    if let Some((index, &v)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricsError::NonFiniteScore { index, value: f64::from(v) });
    }
    Ok(())
}

/// Dice `2|P∩T| / (|P| + |T|)` of the pixels scored `>= threshold` against `truth`; 1.0 when
/// both are empty.
///
/// # Errors
/// Length mismatch, no pixels, non-finite scores.
pub fn dice_at(scores: &[f32], truth: &[bool], threshold: f32) -> Result<f64, MetricsError> {
    check(scores, truth)?;
    let (mut tp, mut pred, mut pos) = (0usize, 0usize, 0usize);
    for (&s, &t) in scores.iter().zip(truth) {
        let p = s >= threshold;
        tp += usize::from(p && t);
        pred += usize::from(p);
        pos += usize::from(t);
    }
    Ok(if pred + pos == 0 { 1.0 } else { 2.0 * tp as f64 / (pred + pos) as f64 })
}

/// The best Dice and the threshold that gives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiceAt {
    /// The Dice.
    pub dice: f64,
    /// Pixels scored `>=` this are predicted positive.
    pub threshold: f32,
}

/// The highest Dice over every threshold (each distinct score), in O(n log n).
///
/// # Errors
/// As [`dice_at`].
pub fn best_dice(scores: &[f32], truth: &[bool]) -> Result<DiceAt, MetricsError> {
    check(scores, truth)?;
    let pos = truth.iter().filter(|&&t| t).count();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut best = DiceAt { dice: if pos == 0 { 1.0 } else { 0.0 }, threshold: f32::INFINITY };
    let mut tp = 0usize;
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        // Take every pixel tied at this score together.
        while k < order.len() && scores[order[k]] == s {
            tp += usize::from(truth[order[k]]);
            k += 1;
        }
        let dice = 2.0 * tp as f64 / (k + pos) as f64;
        if dice > best.dice {
            best = DiceAt { dice, threshold: s };
        }
    }
    Ok(best)
}
