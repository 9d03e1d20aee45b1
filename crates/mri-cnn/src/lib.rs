//! # mri-cnn
//!
//! Will hold the tumour / no-tumour CNN classifier (3 × [conv3×3 → BN → ReLU → maxpool] with
//! 32/64/128 channels, then a dropout MLP to 2 logits), its config and presets, training with
//! validation-loss model selection, checkpoints and prediction of probabilities. Filled by the
//! `[models]` issue; empty for now.
#![warn(missing_docs)]
