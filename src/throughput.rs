//! Training and inference throughput of each model on random data: the project's yardstick
//! against PyTorch (docs/design.md "Performance yardstick").

use std::time::Instant;

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::VarMap;
pub use mri_train::ModelKind;
use mri_train::{apply_overrides, seeded_normal, seeded_var_builder, Adam, ConfigOverride, Preset, StepKey};
use mri_vae::{vae_loss, AnomalyVae, AnomalyVaeConfig, GenerativeVae, VaeConfig, VaeModel};
use serde::{Deserialize, Serialize};

use crate::SynthError;

/// What to time.
#[derive(Debug, Clone)]
pub struct ThroughputSpec {
    /// The model.
    pub model: ModelKind,
    /// Preset.
    pub preset: Preset,
    /// Batch size.
    pub batch: usize,
    /// Image side.
    pub image_size: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps (the median is reported).
    pub steps: usize,
    /// Changes to the model's preset config (`path=value`, as `--cnn-set` and its kin), so that
    /// a variant can be timed against the preset.
    pub overrides: Vec<ConfigOverride>,
}

/// One measurement: the JSON line of the `throughput` example.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Model name.
    pub model: String,
    /// Preset.
    pub preset: Preset,
    /// Batch size.
    pub batch: usize,
    /// Image side.
    pub image_size: usize,
    /// Trainable parameters (GAN: generator + discriminator).
    pub params: usize,
    /// Images per second in training (forward + backward + optimiser step), median step.
    pub train_images_per_s: f64,
    /// Images per second in inference (eval-mode forward; GAN: generator sampling), median step.
    pub infer_images_per_s: f64,
    /// Forward GFLOP per image of the inference pass (convolutions counted by
    /// [`mri_train::flops`], linear layers as 2·in·out; element-wise work not counted).
    pub infer_gflop_per_image: f64,
    /// GFLOP per image of a training step: 3× the forward (backward ≈ 2× forward) for the CNN and
    /// the VAEs; for the GAN 4·G + 9·D (G forward twice and backward once, D forward three
    /// times and backward twice, see `gan_step`; 3·G + 9·D with `reuse_fake`).
    pub train_gflop_per_image: f64,
    /// Achieved GFLOP/s in training.
    pub train_gflops: f64,
    /// Achieved GFLOP/s in inference.
    pub infer_gflops: f64,
    /// Built with the `avx512` cargo feature (gemm's AVX-512 kernels): timings of the two
    /// builds differ by up to ±20 % per model (docs/performance.md). Missing in older lines.
    #[serde(default)]
    pub avx512_build: bool,
    /// The SIMD extensions this CPU has that the kernels can use (`avx2`, `avx512f`; run-time
    /// detection): timings are only comparable between machines with the same. Missing in
    /// older lines.
    #[serde(default)]
    pub cpu_features: Vec<String>,
    /// The config changes it was timed with (`path=value`). Missing in older lines: none.
    #[serde(default)]
    pub set: Vec<String>,
    /// Threads of the pool the measurement ran in.
    #[serde(default)]
    pub threads: usize,
}

/// The SIMD extensions of this CPU that gemm and the kernels pick at run time.
fn cpu_features() -> Vec<String> {
    #[cfg(target_arch = "x86_64")]
    {
        [("avx2", std::arch::is_x86_feature_detected!("avx2")), ("avx512f", std::arch::is_x86_feature_detected!("avx512f"))]
            .into_iter()
            .filter(|(_, has)| *has)
            .map(|(name, _)| name.to_string())
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// FLOPs of one image through every linear layer of `vm` (rank-2 weights), 2·in·out each.
fn linear_flops(vm: &VarMap) -> u64 {
    vm.data().lock().unwrap().values().filter(|v| v.rank() == 2).map(|v| 2 * v.elem_count() as u64).sum()
}

/// Forward FLOPs per image of `f` (one batch of `batch`): counted convolutions plus `linear`.
fn forward_flops(batch: usize, linear: u64, f: impl FnOnce() -> Result<(), SynthError>) -> Result<f64, SynthError> {
    mri_train::flops::take();
    f()?;
    Ok((mri_train::flops::take() as f64 / batch as f64) + linear as f64)
}

/// Times the inference passes (as [`time_steps`]) and counts their FLOPs on the way, so no
/// extra forward pass is run for the count: (median seconds, forward FLOPs per image).
fn time_inference(spec: &ThroughputSpec, linear: u64, mut f: impl FnMut() -> Result<(), SynthError>) -> Result<(f64, f64), SynthError> {
    mri_train::flops::take();
    let seconds = time_steps(spec.warmup, spec.steps, |_| f())?;
    let passes = (spec.warmup + spec.steps) * spec.batch;
    Ok((seconds, mri_train::flops::take() as f64 / passes as f64 + linear as f64))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `warmup` untimed then `steps` timed calls of `f`; returns the median seconds.
fn time_steps(warmup: usize, steps: usize, mut f: impl FnMut(usize) -> Result<(), SynthError>) -> Result<f64, SynthError> {
    for i in 0..warmup {
        f(i)?;
    }
    let mut t = Vec::with_capacity(steps);
    for i in 0..steps {
        let t0 = Instant::now();
        f(warmup + i)?;
        t.push(t0.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

fn trainable(vm: &VarMap) -> usize {
    // Batch-norm running statistics and spectral norm's power-iteration vectors are state, not
    // parameters (PyTorch keeps both as buffers: benches/pytorch/bench.py counts the same).
    vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with(mri_gan::SN_U)).map(|(_, v)| v.elem_count()).sum()
}

/// Training and inference seconds of a VAE, and its forward FLOPs per image.
fn vae_steps<M: VaeModel>(
    model: &M,
    vm: &VarMap,
    adam: mri_train::AdamConfig,
    loss: mri_vae::VaeLoss,
    x: &Tensor,
    spec: &ThroughputSpec,
) -> Result<(f64, f64, f64), SynthError> {
    let mut opt = Adam::from_varmap(vm, adam, |n| !n.contains("running_"))?;
    let train = time_steps(spec.warmup, spec.steps, |i| {
        let (mu, logvar) = model.encode(x, true)?;
        let eps = seeded_normal(0, &format!("eps/{i}"), mu.shape(), x.device())?;
        let z = (&mu + (eps * (&logvar * 0.5)?.exp()?)?)?;
        let parts = vae_loss(loss, &model.decode_logits(&z, true)?, x, &mu, &logvar)?;
        opt.backward_step(&parts.total)?;
        Ok(())
    })?;
    let (infer, fwd) = time_inference(spec, linear_flops(vm), || {
        model.reconstruct(x)?.flatten_all()?.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    })?;
    Ok((train, infer, fwd))
}

/// Times one model: training steps then inference steps on seeded random data, on a worker of
/// rayon's pool as training runs ([`mri_train::in_pool`]).
pub fn measure(spec: &ThroughputSpec, device: &Device) -> Result<Throughput, SynthError> {
    mri_train::in_pool(|| measure_here(spec, device))
}

fn measure_here(spec: &ThroughputSpec, device: &Device) -> Result<Throughput, SynthError> {
    if spec.batch == 0 || spec.steps == 0 {
        return Err(SynthError::Invalid("batch and steps must be positive".into()));
    }
    let s = Some(spec.image_size);
    let b = spec.batch;
    let x = candle_nn::ops::sigmoid(&seeded_normal(1, "throughput/x", (b, 1, spec.image_size, spec.image_size), device)?)?;
    let vm = VarMap::new();
    let vb = seeded_var_builder(&vm, 0, DType::F32, device);
    let (params, train_s, infer_s, fwd, train_flops) = match spec.model {
        ModelKind::Cnn => {
            let cfg = apply_overrides(&mri_cnn::CnnConfig::preset(spec.preset, s), &spec.overrides)?;
            let model = mri_cnn::Cnn::new(&cfg, vb, 0)?;
            let y = Tensor::from_vec((0..b as u32).map(|i| i % 2).collect::<Vec<_>>(), b, device)?;
            let mut opt = Adam::from_varmap(&vm, cfg.adam, |n| !n.contains("running_"))?;
            let key: StepKey = model.step_key().clone();
            let train = time_steps(spec.warmup, spec.steps, |i| {
                key.set(i as u64);
                let loss = candle_nn::loss::cross_entropy(&model.forward_t(&x, true)?, &y)?;
                opt.backward_step(&loss)?;
                Ok(())
            })?;
            let (infer, fwd) = time_inference(spec, linear_flops(&vm), || {
                model.forward_t(&x, false)?.sum_all()?.to_scalar::<f32>()?;
                Ok(())
            })?;
            (trainable(&vm), train, infer, fwd, 3.0 * fwd)
        }
        ModelKind::GenerativeVae => {
            let cfg = apply_overrides(&VaeConfig::preset(spec.preset, s), &spec.overrides)?;
            let model = GenerativeVae::new(&cfg, vb)?;
            let (t, i, fwd) = vae_steps(&model, &vm, cfg.adam, cfg.loss, &x, spec)?;
            (trainable(&vm), t, i, fwd, 3.0 * fwd)
        }
        ModelKind::AnomalyVae => {
            let cfg = apply_overrides(&AnomalyVaeConfig::preset(spec.preset, s), &spec.overrides)?;
            let model = AnomalyVae::new(&cfg, vb)?;
            let (t, i, fwd) = vae_steps(&model, &vm, cfg.adam, cfg.loss, &x, spec)?;
            (trainable(&vm), t, i, fwd, 3.0 * fwd)
        }
        ModelKind::DenoisingAe => {
            let cfg = apply_overrides(&mri_dae::DaeConfig::preset(spec.preset, s), &spec.overrides)?;
            let model = mri_dae::DenoisingAe::new(&cfg, vb)?;
            let mut opt = Adam::from_varmap(&vm, cfg.adam, |n| !n.contains("running_"))?;
            let train = time_steps(spec.warmup, spec.steps, |i| {
                let noisy = (&x + mri_dae::coarse_noise(&cfg, &x, 0, &format!("noise/{i}"))?)?;
                let loss = (model.forward_t(&noisy, true)? - &x)?.sqr()?.mean_all()?;
                opt.backward_step(&loss)?;
                Ok(())
            })?;
            let (infer, fwd) = time_inference(spec, linear_flops(&vm), || {
                model.forward_t(&x, false)?.sum_all()?.to_scalar::<f32>()?;
                Ok(())
            })?;
            (trainable(&vm), train, infer, fwd, 3.0 * fwd)
        }
        ModelKind::Gan => {
            let cfg = apply_overrides(&mri_gan::GanConfig::preset(spec.preset, s), &spec.overrides)?;
            let (g, g_vm, d, d_vm) = mri_gan::build_gan(&cfg, 0, device)?;
            let mut adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_"))?;
            let mut adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |n| !n.ends_with(mri_gan::SN_U))?;
            // Texture matching (`--set texture_match=λ`) against the timing batch's own statistics.
            let texture = if cfg.texture_match > 0.0 {
                let set = mri_train::ImageSet { side: spec.image_size, pixels: x.flatten_all()?.to_vec1::<f32>()?, labels: vec![0; b] };
                Some(mri_gan::TextureTarget::from_images(&set, 0, device)?)
            } else {
                None
            };
            let mut lecam = mri_gan::LeCamAnchors::default();
            let train = time_steps(spec.warmup, spec.steps, |_| {
                mri_gan::gan_step(&g, &d, &mut adam_g, &mut adam_d, &x, None, &cfg, 0, texture.as_ref(), &mut lecam)?;
                Ok(())
            })?;
            let z = seeded_normal(2, "throughput/z", (b, cfg.latent), device)?;
            let (infer, g_fwd) = time_inference(spec, linear_flops(&g_vm), || {
                g.forward_t(&z, false)?.sum_all()?.to_scalar::<f32>()?;
                Ok(())
            })?;
            // D's forward FLOPs need one pass of their own (a training step mixes G and D).
            let d_fwd = forward_flops(b, linear_flops(&d_vm), || {
                d.forward(&x)?;
                Ok(())
            })?;
            // G forward twice (once with `reuse_fake`) and backward once.
            let g_passes = if cfg.reuse_fake { 3.0 } else { 4.0 };
            (trainable(&g_vm) + trainable(&d_vm), train, infer, g_fwd, g_passes * g_fwd + 9.0 * d_fwd)
        }
    };
    Ok(Throughput {
        model: spec.model.name().into(),
        preset: spec.preset,
        batch: b,
        image_size: spec.image_size,
        params,
        train_images_per_s: b as f64 / train_s,
        infer_images_per_s: b as f64 / infer_s,
        infer_gflop_per_image: fwd / 1e9,
        train_gflop_per_image: train_flops / 1e9,
        train_gflops: train_flops * b as f64 / train_s / 1e9,
        infer_gflops: fwd * b as f64 / infer_s / 1e9,
        avx512_build: mri_train::AVX512_KERNELS,
        set: spec.overrides.iter().map(|o| o.to_string()).collect(),
        cpu_features: cpu_features(),
        threads: mri_train::pool_threads(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A measurement says how it was built and where it ran; lines from before those fields
    /// still read.
    #[test]
    fn a_measurement_names_its_build_and_machine() {
        let spec = ThroughputSpec { model: ModelKind::Cnn, preset: Preset::Quick, batch: 2, image_size: 16, warmup: 0, steps: 1, overrides: Vec::new() };
        let t = measure(&spec, &Device::Cpu).unwrap();
        assert_eq!(t.avx512_build, mri_train::AVX512_KERNELS);
        assert!(t.threads >= 1);
        assert!(t.cpu_features.iter().all(|f| f == "avx2" || f == "avx512f"), "{:?}", t.cpu_features);
        let mut old = serde_json::to_value(&t).unwrap();
        for key in ["avx512_build", "cpu_features", "threads", "set"] {
            old.as_object_mut().unwrap().remove(key);
        }
        let back: Throughput = serde_json::from_value(old).unwrap();
        assert!(!back.avx512_build && back.cpu_features.is_empty() && back.threads == 0 && back.set.is_empty());
    }
}
