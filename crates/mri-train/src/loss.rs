//! Losses.

use candle_core::Tensor;

/// Mean binary cross-entropy on logits, in the stable form
/// `max(x, 0) − x·y + log(1 + exp(−|x|))`: no overflow for large |x| (candle-nn's
/// `binary_cross_entropy_with_logit` computes `log(sigmoid(x))`, which is −inf for x ≲ −88
/// in f32; candle issue 2561).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let relu = logits.relu()?;
    let log_term = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((relu - (logits * targets)?)? + log_term)?.mean_all()
}
