//! # mri-train
//!
//! What the mri-synth models share for training on Candle:
//!
//! - [`DeviceChoice`]: `cpu | cuda | metal | auto` from the command line to a candle `Device`.
//! - [`seeded_var_builder`]: a `VarBuilder` whose new variables are drawn from **our** seeded
//!   RNG (one ChaCha stream per variable name), because candle's CPU RNG cannot be seeded
//!   (candle issue 2651): the same seed gives the same initial weights on every run.
//! - [`SeededDropout`] and [`StepKey`]: dropout masks from a seeded stream keyed by training
//!   step and layer, so a resumed run draws the same masks as an uninterrupted one.
//! - [`Adam`]: Adam / AdamW with explicit β1, β2, ε and decoupled weight decay (candle-nn's
//!   `ParamsAdamW::default()` has weight decay 0.01 and β1 0.9, and its state cannot be saved);
//!   its moments are part of the checkpoint.
//! - [`ReduceOnPlateau`] and [`StepDecay`] learning-rate schedules.
//! - [`bce_with_logits`]: the numerically stable softplus form (candle issue 2561).
//! - [`checkpoint`]: a checkpoint is one unit: a JSON manifest ([`Sidecar`]) written last by an
//!   atomic rename, naming its safetensors files with their BLAKE3 hashes (verified on load);
//!   a killed save rolls back to the previous checkpoint.
//! - [`run_epochs`]: the one epoch loop (resume, stop-after, best epoch, checkpoints, progress,
//!   grids) that every model plugs an [`EpochTask`] into; [`Fingerprint`]: what a run was
//!   computed from, stored in every sidecar and checked on resume.
//! - [`Preset`], [`Presets`] and [`ModelKind`]: typed presets with one resolution path, and one
//!   spelling per model kind.
//! - [`EpochProgress`]: an indicatif bar per epoch with the losses, silent in quiet mode.
//! - [`fastconv`]: conv and transposed conv as im2col / col2im + GEMM with GEMM backward
//!   passes on the CPU ([`Conv2d`], [`ConvTranspose2d`]); candle's ops elsewhere. Convs to
//!   one output channel (a decoder's or generator's last layer) skip the columns and run as
//!   direct row loops instead (about twice as fast a layer at 64 px); stride-1 convs of 3×3
//!   and more with several channels each way run as one GEMM per kernel tap on shifted views
//!   of the padded image, with no columns at all (1.05–1.75× a layer; [`fastconv::ConvAlgorithm`]
//!   switches back to im2col for comparison). Stride-2 columns are cut from the two phases
//!   (even and odd columns) of each padded row, one contiguous copy per kernel tap.
//! - [`Linear`] / [`linear()`]: a fully connected layer whose weight gradient is computed in the
//!   weight's own (out, in) layout, not as a transposed view that candle then copies element
//!   by element (the anomaly VAE trains 9–21 % faster, the paper CNN 1.56×).
//! - [`fftconv`]: stride-1 transposed convs with kernels of 9+ taps (the study anomaly
//!   decoder's 33×33 and 65×65) as per-frequency complex products: 15× faster training.
//! - [`upconv`]: nearest ×2 upsampling followed by a 3×3 conv (the GAN generator's, VAE
//!   decoder's and DAE up path's layers) as four 2×2 phase convs on the small map
//!   ([`Conv2d::forward_upsampled`]): 16 multiply-adds where 36 were, no upsampled map.
//! - [`activation`]: ReLU, leaky ReLU and a residual block's ReLU of a sum ([`relu`],
//!   [`leaky_relu`], [`add_relu`]) as one vectorised pass forward and one backward on the CPU.
//! - [`fastnorm`]: fused batch norm ([`BatchNorm2d`]) and 2×2 max-pool ([`max_pool2`]) with
//!   their own backward passes on the CPU.
//! - [`translate`]: a per-image shift of a batch with one pass forward and one backward on the
//!   CPU (DiffAugment's translation).
//! - [`spectral`]: one image's Fourier phase with another's high-frequency amplitudes (a
//!   synthetic set's texture made independent of its classes).
//! - [`ImageSet`]: images + labels in memory, seeded batches with optional flip augmentation, or
//!   the full seeded [`AugmentConfig`] (geometry, intensity, noise, blur, cutout).
//!
//! ```
//! use candle_core::{DType, Device, Module};
//! use candle_nn::VarMap;
//! use mri_train::seeded_var_builder;
//!
//! let make = |seed| {
//!     let vm = VarMap::new();
//!     let vb = seeded_var_builder(&vm, seed, DType::F32, &Device::Cpu);
//!     let lin = candle_nn::linear(4, 2, vb.pp("fc")).unwrap();
//!     lin.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap()
//! };
//! assert_eq!(make(7), make(7));
//! assert_ne!(make(7), make(8));
//! ```
//!
//! Dependencies: `candle-core`/`candle-nn` (tensors, autograd, layers), `blake3` (checkpoint
//! file hashes), `clap` (optional feature `clap`: presets and model kinds as command-line
//! values), `rand` + `rand_chacha`
//! (portable seeded streams), `serde` + `serde_json` (sidecars), `indicatif` (progress bars), `rayon` (parallel im2col / col2im),
//! `realfft` + `rustfft` (the FFTs of [`fftconv`] and [`spectral`]: pure Rust, SIMD chosen at run time),
//! `thiserror` (the error enum), `libc` (Linux with glibc only: `mallopt`, see
//! [`configure_allocator`]), `libmimalloc-sys` (optional feature `mimalloc`: mimalloc's purge
//! delay, see [`configure_allocator`]).
#![warn(missing_docs)]

pub mod activation;
pub mod augment;
pub mod checkpoint;
pub mod data;
pub mod device;
mod directconv;
pub mod dropout;
pub mod fastconv;
pub mod fastnorm;
pub mod fftconv;
pub mod fingerprint;
pub mod flops;
pub mod init;
pub mod kinds;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod overrides;
pub mod progress;
pub mod run;
pub mod samples;
pub mod schedule;
pub mod shift;
mod shiftconv;
pub mod spectral;
pub mod upconv;

pub use activation::{add_relu, leaky_relu, relu};
pub use augment::{AugmentConfig, AugmentParams, RandConv};
pub use checkpoint::{restore, snapshot, var_values, Checkpoint, FileEntry, OptimizerState, Sidecar};
pub use data::ImageSet;
pub use device::DeviceChoice;
pub use dropout::{SeededDropout, StepKey};
pub use fastconv::{Conv2d, ConvTranspose2d};
pub use fastnorm::{max_pool2, upsample2, BatchNorm2d};
pub use fingerprint::Fingerprint;
pub use init::{seeded_normal, seeded_var_builder, stream_seed};
pub use kinds::{ModelKind, Preset, Presets};
pub use linear::{linear, Linear};
pub use loss::bce_with_logits;
pub use optim::{Adam, AdamConfig};
pub use overrides::{apply_overrides, ConfigOverride};
pub use progress::EpochProgress;
pub use run::{check_resumable, epochs_for, reread_config, run_epochs, EpochTask, LoopOutput, RunOptions, CONTINUABLE_FIELDS};
pub use samples::{save_recon_grid, write_class_pngs};
pub use schedule::{ReduceOnPlateau, StepDecay};
pub use shift::translate;

/// Everything that can go wrong while training, saving or loading.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A candle operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint's file is damaged or not what it should be.
    #[error("{path}: corrupt checkpoint: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint was written for another model or configuration.
    #[error("{path}: checkpoint does not match this model: {reason}")]
    CheckpointMismatch {
        /// The sidecar file.
        path: std::path::PathBuf,
        /// What differs.
        reason: String,
    },
    /// An unknown device name or an unavailable device.
    #[error("device: {0}")]
    Device(String),
    /// A parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A `path=value` config override that names no field, or whose value the field refuses.
    #[error("config override {path}: {reason}")]
    ConfigOverride {
        /// The override's field path, as given (`loss.beta`).
        path: String,
        /// Why.
        reason: String,
    },
}

/// The crate's result type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Spin iterations after which an idle worker of candle's element-wise thread pool parks,
/// unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` says otherwise (see [`configure_candle_threads`]).
pub const CANDLE_SPIN_LIMIT: u32 = 1000;

/// Whether this build has gemm's AVX-512 micro-kernels (cargo feature `avx512`, on by default
/// since session 21; gemm still picks them at run time only on a CPU with AVX-512F).
pub const AVX512_KERNELS: bool = cfg!(feature = "avx512");

/// Sets `CANDLE_NUM_THREADS=1`, `CANDLE_BARRIER_POOL_SPIN_LIMIT` to [`CANDLE_SPIN_LIMIT`] and
/// `RAYON_NUM_THREADS` to rayon's default, each unless it is set already.
///
/// candle-core 0.11.1 runs its element-wise ops on a pool of its own beside rayon's
/// (utils.rs, `BarrierPool`, one worker fewer than `CANDLE_NUM_THREADS`, default: the cores);
/// after every op its idle workers spin 25 000 times before they park, on the core that
/// rayon's conv and GEMM threads need: a quarter of a GAN training step's samples were that
/// spinning (docs/performance.md, session 15). With 1000 spins training ran 10–20 % faster
/// in the same sitting, and with no worker at all (`CANDLE_NUM_THREADS=1`: element-wise ops on
/// the calling thread) as fast again (session 16). One thread is also what lets
/// [`concurrently`] run two trainings side by side: the pool serialises its callers. The pool
/// reads the variables once, when it is first used, and changing the environment is only
/// sound while the process has a single thread: call this first thing in `main`.
///
/// It also sets `RAYON_NUM_THREADS` to rayon's own default (the available parallelism) unless
/// set: candle 0.11.1 asks for its matmul thread count on **every** matmul
/// (`utils::get_num_threads`), and without that variable the answer is
/// `num_cpus::get_physical()`, which opens and parses `/proc/cpuinfo` each time — 1–3 % of a
/// phantom GAN stage's samples were the kernel formatting that file (perf, session 23). Rayon's
/// pool is the size it would have been anyway; candle's matmuls now use that count (the
/// physical core count before, the same on a machine without SMT).
pub fn configure_candle_threads() {
    let rayon_default = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (var, value) in [
        ("CANDLE_NUM_THREADS", "1".to_string()),
        ("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT.to_string()),
        ("RAYON_NUM_THREADS", rayon_default.to_string()),
    ] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
}

/// What a process that trains sets first thing in `main`, while it has one thread:
/// [`configure_candle_threads`] and [`configure_allocator`].
pub fn configure_runtime() {
    configure_candle_threads();
    configure_allocator();
}

/// glibc's mmap threshold once fixed by [`configure_allocator`]: its largest allowed value.
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// glibc's trim threshold once fixed by [`configure_allocator`].
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Whether the environment sets glibc's allocator thresholds itself
/// (`GLIBC_TUNABLES=glibc.malloc.…`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`):
/// [`configure_allocator`] then leaves them as the user chose.
pub fn malloc_tunables_set() -> bool {
    std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."))
        || ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"].iter().any(|v| std::env::var_os(v).is_some())
}

/// What [`configure_allocator`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorSetup {
    /// glibc's mmap and trim thresholds were fixed (Linux with glibc, unless
    /// [`malloc_tunables_set`]).
    pub glibc_thresholds: bool,
    /// mimalloc was told never to purge freed memory (feature `mimalloc`, unless
    /// `MIMALLOC_PURGE_DELAY` is set: then the user's value stands).
    pub mimalloc_keeps_freed: bool,
}

/// mimalloc's `mi_option_purge_delay`: its position in `mi_option_e` (mimalloc.h), 15 in both
/// the v2 and the v3 headers that `libmimalloc-sys` 0.1.49 ships; the crate does not export
/// the constant.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed buffers in the process for reuse instead of handing them back to the kernel;
/// returns what it changed.
///
/// **glibc** serves a block over its mmap threshold (128 KiB at start, raised on each free up
/// to 32 MiB) with a fresh mapping, unmaps it on free, and returns the free top of its heaps
/// to the kernel once it exceeds the trim threshold. Every candle op allocates its output and
/// every conv its columns, so a step's buffers were mapped, zero-filled by page faults and
/// unmapped again on every pass: a third of a CNN eval forward's samples were the kernel's
/// page-fault and unmap paths (perf, docs/performance.md, session 18). Fixed thresholds
/// (mmap at [`MMAP_THRESHOLD`], trim at [`TRIM_THRESHOLD`]) turn that off: the default
/// preset's CNN ran its eval forward 2.8× as fast in a fresh process (30.7 → 10.8 ms a batch
/// of 32), and the phantom main job's generative VAEs, trained side by side, took 187.6 →
/// 133.8 s with this and the in-place backward reads together. Buffers over 32 MiB are still
/// mapped per use: glibc allows no larger threshold.
///
/// **mimalloc** (the root crate's global allocator under its default feature `mimalloc`)
/// keeps blocks of every size, but purges memory that stayed free for its purge delay
/// (1 s in mimalloc 3): shorter than a paper-preset step, whose 134 MiB activations and
/// gradients were page-faulted in again on every step (7.8 M page faults, half the CPU time
/// in the kernel, for seven steps of the paper CNN: docs/performance.md, session 33). A delay
/// of −1 never purges. With the `mimalloc` feature this sets it, unless `MIMALLOC_PURGE_DELAY`
/// is in the environment.
///
/// The price either way is that memory freed stays with the process (its peak use), which a
/// training process reuses anyway.
pub fn configure_allocator() -> AllocatorSetup {
    AllocatorSetup { glibc_thresholds: configure_glibc_malloc(), mimalloc_keeps_freed: configure_mimalloc() }
}

fn configure_glibc_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if malloc_tunables_set() {
            return false;
        }
        // SAFETY: mallopt only sets allocator parameters; glibc serialises it with the
        // allocator's own lock, and both values are within its documented ranges.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

fn configure_mimalloc() -> bool {
    #[cfg(feature = "mimalloc")]
    {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return false;
        }
        // SAFETY: mi_option_set / mi_option_get store and load one option slot; mimalloc reads
        // the purge delay each time it considers a purge, so setting it at any time is sound.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
            libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == -1
        }
    }
    #[cfg(not(feature = "mimalloc"))]
    {
        false
    }
}

/// Threads of the rayon pool the caller runs in (every kernel's parallel loops and GEMMs use
/// it): the global pool's, or a lane's inside [`concurrently`].
pub fn pool_threads() -> usize {
    rayon::current_num_threads()
}

/// One independent job for [`concurrently`].
pub type Job<'a, R> = Box<dyn FnOnce() -> R + Send + 'a>;

/// Runs independent `jobs` side by side, each lane of them on its own share of the cores, and
/// returns their results in the order given.
///
/// On two cores, two trainings each on one thread get through more images together than one
/// after the other on both threads, because a lone training's small convolutions and
/// element-wise ops do not keep two threads busy. Measured on the 2-core machine, default
/// preset (docs/performance.md, session 16): generative VAE 205 img/s on two threads against
/// 121 + 117 side by side, CNN 631 against 457 + 428, DAE 174 against 106 + 106. The jobs run
/// in `min(jobs, threads)` lanes, each a rayon pool of `threads / lanes` threads (so that the
/// kernels' parallel loops and GEMMs stay inside their lane) taking the next job in the given
/// order whenever it is free: put long jobs first. Every kernel here gives the same bits
/// whatever its thread count (docs/performance.md), so results do not depend on this. One
/// job, one thread, or a pool that cannot be built: the jobs run one after the other in
/// [`in_pool`].
pub fn concurrently<R: Send>(jobs: Vec<Job<'_, R>>) -> Vec<R> {
    let threads = rayon::current_num_threads();
    let lanes = jobs.len().min(threads);
    let pools: Option<Vec<rayon::ThreadPool>> = if lanes < 2 {
        None
    } else {
        (0..lanes).map(|l| rayon::ThreadPoolBuilder::new().num_threads(threads / lanes).thread_name(move |i| format!("mri-lane{l}-{i}")).build().ok()).collect()
    };
    let Some(pools) = pools else {
        return in_pool(|| jobs.into_iter().map(|job| job()).collect());
    };
    let n = jobs.len();
    // A shared queue: each lane takes the next job when it is free (a long job first, then
    // the short ones, keeps the lanes even).
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next();
    let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = pools
            .iter()
            .map(|pool| {
                let next = &next;
                scope.spawn(move || pool.install(|| std::iter::from_fn(next).map(|(i, job)| (i, job())).collect::<Vec<_>>()))
            })
            .collect();
        for h in handles {
            // A job that panicked panics here too, as it would have run in line.
            for (i, r) in h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)) {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().map(|r| r.expect("every job ran")).collect()
}

/// Runs `work` on a worker of rayon's global pool and returns its result.
///
/// Every CPU kernel here (and the `gemm` crate) splits its work with rayon. Called from a thread
/// outside the pool, each of those calls injects a job and puts the caller to sleep on a lock
/// until a worker has finished it: two context switches per tensor op, thousands per training
/// step. Called from inside the pool, the same calls are work-stealing joins that the calling
/// worker starts itself. Measured on the 2-core machine (Br35H, 64 px, residual CNN, same
/// sitting): 14.4–16.8 s an epoch outside the pool, 10.7–11.7 s inside, identical results
/// (docs/performance.md). Nested calls (already on a worker) run `work` in place.
pub fn in_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    // `rayon::scope` runs its closure on a worker of the current (here: global) pool, blocking
    // the calling thread once for the whole of `work` (rayon-core `Registry::in_worker`).
    rayon::scope(|_| work())
}
