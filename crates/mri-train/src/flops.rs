//! A process-wide count of the floating-point operations done by this crate's convolutions
//! ([`crate::fastconv::conv2d`] and [`crate::fastconv::conv_transpose2d`], on any device), so
//! that throughput can be stated in achieved GFLOP/s. One multiply-add counts as 2 FLOPs;
//! only forward passes are counted (a backward pass costs about twice its forward).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! mri_train::flops::take();
//! let x = Tensor::zeros((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
//! let w = Tensor::zeros((4, 3, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
//! mri_train::fastconv::conv2d(&x, &w, None, 1, 1)?;
//! // 2 images × 4 out-channels × 8×8 outputs × 3·3·3 multiply-adds × 2.
//! assert_eq!(mri_train::flops::take(), 2 * 4 * 64 * 27 * 2);
//! # Ok::<(), candle_core::Error>(())
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

static COUNT: AtomicU64 = AtomicU64::new(0);

/// Adds `n` FLOPs to the count.
pub fn add(n: u64) {
    COUNT.fetch_add(n, Ordering::Relaxed);
}

/// Returns the count since the last call and resets it.
pub fn take() -> u64 {
    COUNT.swap(0, Ordering::Relaxed)
}
