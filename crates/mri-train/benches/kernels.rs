//! Criterion benches of the CPU kernels for every conv shape the paper presets use, beside
//! candle's own ops. Names carry the shape: `conv2d/<model>/<cin>x<cout>k<k>s<s>@<h>/<pass>`.
//!
//! `cargo bench -p mri-train --bench kernels` (a subset: `-- 'conv2d/cnn'`). Batch 16.
//! Per shape: `forward`, `forward-candle` (candle 0.11.1's own op) and `forward-backward` (ours,
//! through autograd: both gradients come from one pass).

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use mri_train::fastconv::{conv2d, conv_transpose2d, set_conv_algorithm, ConvAlgorithm};
use mri_train::{max_pool2, upsample2, BatchNorm2d};

const N: usize = 16;

/// (model, c_in, c_out, k, stride, pad, input side) of every conv in the paper presets.
type Shape = (&'static str, usize, usize, usize, usize, usize, usize);

const CONVS: &[Shape] = &[
    ("cnn", 1, 32, 3, 1, 1, 128),
    ("cnn", 32, 64, 3, 1, 1, 64),
    ("cnn", 64, 128, 3, 1, 1, 32),
    ("gen-vae-enc", 1, 64, 3, 2, 1, 128),
    ("gen-vae-enc", 64, 128, 3, 2, 1, 64),
    ("gen-vae-enc", 128, 256, 3, 2, 1, 32),
    ("gen-vae-enc", 256, 512, 3, 2, 1, 16),
    ("gen-vae-enc", 512, 512, 3, 2, 1, 8),
    ("gen-vae-enc", 512, 1024, 3, 2, 1, 4),
    ("gen-vae-dec", 1024, 512, 3, 1, 1, 4),
    ("gen-vae-dec", 512, 512, 3, 1, 1, 8),
    ("gen-vae-dec", 512, 256, 3, 1, 1, 16),
    ("gen-vae-dec", 256, 128, 3, 1, 1, 32),
    ("gen-vae-dec", 128, 64, 3, 1, 1, 64),
    ("gen-vae-dec", 64, 1, 3, 1, 1, 128),
    ("gan-g", 128, 128, 3, 1, 1, 16),
    ("gan-g", 128, 64, 3, 1, 1, 32),
    ("gan-g", 64, 32, 3, 1, 1, 64),
    ("gan-g", 32, 1, 3, 1, 1, 128),
    ("gan-d", 1, 64, 4, 2, 1, 128),
    ("gan-d", 64, 128, 4, 2, 1, 64),
    ("gan-d", 128, 256, 4, 2, 1, 32),
    ("gan-d", 256, 512, 4, 2, 1, 16),
    ("anomaly-enc", 1, 32, 4, 2, 1, 128),
    ("anomaly-enc", 32, 64, 4, 2, 1, 64),
];

/// The convs with one input or one output channel of the default preset (64 px): a GEMM with
/// M or K of 1–9 runs far below the machine's peak (issue 16, lever 3).
const ONE_CHANNEL_CONVS: &[Shape] = &[
    ("default-cnn-stem", 1, 16, 3, 2, 1, 64),
    ("default-gen-vae-enc", 1, 32, 3, 2, 1, 64),
    ("default-gen-vae-dec", 32, 1, 3, 1, 1, 64),
    ("default-gan-g", 16, 1, 3, 1, 1, 64),
    ("default-gan-d", 1, 16, 4, 2, 1, 64),
    ("default-dae", 1, 8, 3, 1, 1, 64),
];

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap()
}

fn benches(c: &mut Criterion) {
    // As every example does: freed buffers stay with the process, so a kernel's time is not
    // glibc's page faults (docs/performance.md, session 18).
    mri_train::configure_allocator();
    let mut g = c.benchmark_group("conv2d");
    g.sample_size(10);
    for &(model, ci, co, k, s, p, h) in CONVS.iter().chain(ONE_CHANNEL_CONVS) {
        let x = randn(&[N, ci, h, h]);
        let w = randn(&[co, ci, k, k]);
        let name = format!("{model}/{ci}x{co}k{k}s{s}@{h}");
        g.bench_function(format!("{name}/forward"), |b| b.iter(|| conv2d(&x, &w, None, s, p).unwrap()));
        g.bench_function(format!("{name}/forward-candle"), |b| b.iter(|| x.conv2d(&w, p, s, 1, 1).unwrap()));
        // Both gradients come from one pass (per image: columns recomputed, dW and dx GEMMs,
        // col2im), so forward + backward is timed as one; backward ≈ this − forward.
        let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
        g.bench_function(format!("{name}/forward-backward"), |b| {
            b.iter(|| conv2d(xv.as_tensor(), wv.as_tensor(), None, s, p).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    g.finish();

    // Stride-2 convs and transposed convs of the default preset at 64 px, batch 32 (the
    // phase-split im2col / col2im, session 34): (name, cin, cout, k, side of the conv's input).
    let mut g = c.benchmark_group("stride2-default");
    g.sample_size(20);
    for &(name, ci, co, k, h) in &[("anomaly-enc", 1, 32, 4, 64), ("anomaly-enc", 32, 64, 4, 32), ("gen-vae-enc", 32, 64, 3, 32), ("cnn-block", 16, 32, 3, 32)]
    {
        let (xv, wv) = (Var::from_tensor(&randn(&[32, ci, h, h])).unwrap(), Var::from_tensor(&randn(&[co, ci, k, k])).unwrap());
        let name = format!("{name}/{ci}x{co}k{k}s2@{h}");
        g.bench_function(format!("{name}/forward"), |b| b.iter(|| conv2d(xv.as_tensor(), wv.as_tensor(), None, 2, 1).unwrap()));
        g.bench_function(format!("{name}/forward-backward"), |b| {
            b.iter(|| conv2d(xv.as_tensor(), wv.as_tensor(), None, 2, 1).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    for &(name, ci, co, h) in &[("anomaly-dec", 64, 32, 16), ("anomaly-dec", 32, 1, 32)] {
        let (xv, wv) = (Var::from_tensor(&randn(&[32, ci, h, h])).unwrap(), Var::from_tensor(&randn(&[ci, co, 4, 4])).unwrap());
        let name = format!("{name}/{ci}x{co}k4s2@{h}");
        g.bench_function(format!("{name}/transposed-forward"), |b| b.iter(|| conv_transpose2d(xv.as_tensor(), wv.as_tensor(), None, 2, 1, 0).unwrap()));
        g.bench_function(format!("{name}/transposed-forward-backward"), |b| {
            b.iter(|| conv_transpose2d(xv.as_tensor(), wv.as_tensor(), None, 2, 1, 0).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("layers");
    g.sample_size(10);
    let vm = candle_nn::VarMap::new();
    let vb = mri_train::seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu);
    let bn = BatchNorm2d::new(64, vb.pp("bn")).unwrap();
    let x = randn(&[N, 64, 64, 64]);
    let xv = candle_core::Var::from_tensor(&x).unwrap();
    g.bench_function("batch-norm/64@64/train-forward-backward", |b| {
        b.iter(|| {
            use candle_core::ModuleT;
            bn.forward_t(xv.as_tensor(), true).unwrap().sum_all().unwrap().backward().unwrap()
        })
    });
    g.bench_function("max-pool-2/64@64/forward-backward", |b| b.iter(|| max_pool2(xv.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap()));
    g.bench_function("max-pool-2/64@64/forward-backward-candle", |b| b.iter(|| xv.as_tensor().max_pool2d(2).unwrap().sum_all().unwrap().backward().unwrap()));
    let small = candle_core::Var::from_tensor(&randn(&[N, 64, 32, 32])).unwrap();
    g.bench_function("upsample-nearest-2/64@32/forward-backward", |b| b.iter(|| upsample2(small.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap()));
    g.bench_function("upsample-nearest-2/64@32/forward-backward-candle", |b| {
        b.iter(|| small.as_tensor().upsample_nearest2d(64, 64).unwrap().sum_all().unwrap().backward().unwrap())
    });
    let xt = randn(&[N, 64, 32, 32]);
    let wt = randn(&[64, 32, 4, 4]);
    g.bench_function("conv-transpose/64x32k4s2@32/forward", |b| b.iter(|| conv_transpose2d(&xt, &wt, None, 2, 1, 0).unwrap()));
    g.bench_function("conv-transpose/64x32k4s2@32/forward-candle", |b| b.iter(|| xt.conv_transpose2d(&wt, 1, 0, 2, 1).unwrap()));
    let (xtv, wtv) = (Var::from_tensor(&xt).unwrap(), Var::from_tensor(&wt).unwrap());
    g.bench_function("conv-transpose/64x32k4s2@32/forward-backward", |b| {
        b.iter(|| conv_transpose2d(xtv.as_tensor(), wtv.as_tensor(), None, 2, 1, 0).unwrap().sum_all().unwrap().backward().unwrap())
    });
    // Stride-1 transposed convs, FFT products against GEMM + col2im: where the FFT path starts
    // (fftconv::FFT_MIN_KERNEL), and the study decoder's first layer at 64 px (kernel 17).
    for &(cin, cout, k, side) in &[(32, 16, 5, 16), (32, 16, 7, 16), (32, 16, 9, 16), (32, 16, 13, 16), (64, 32, 17, 16)] {
        let (x, w) = (Var::from_tensor(&randn(&[N, cin, side, side])).unwrap(), Var::from_tensor(&randn(&[cin, cout, k, k])).unwrap());
        let name = format!("conv-transpose-s1/{cin}x{cout}k{k}@{side}");
        g.bench_function(format!("{name}/forward-backward-fft"), |b| {
            b.iter(|| mri_train::fftconv::conv_transpose2d(x.as_tensor(), w.as_tensor(), 0).unwrap().sum_all().unwrap().backward().unwrap())
        });
        g.bench_function(format!("{name}/forward-backward-gemm"), |b| {
            b.iter(|| mri_train::fastconv::conv_transpose2d_gemm(x.as_tensor(), w.as_tensor(), 1, 0, 0).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    g.finish();
    // Upsample ×2 then conv 3×3 (the default preset's generator, VAE decoder and DAE up path,
    // batch 16), as upsample + im2col conv against the four 2×2 phase convs of
    // mri_train::upconv. Names: `upsample-conv/<model>/<cin>x<cout>@<low-res side>`.
    let mut g = c.benchmark_group("upsample-conv");
    g.sample_size(10);
    for &(model, ci, co, h) in UPSAMPLE_CONVS {
        let x = Var::from_tensor(&randn(&[N, ci, h, h])).unwrap();
        let (w, b) = (Var::from_tensor(&randn(&[co, ci, 3, 3])).unwrap(), Var::from_tensor(&randn(&[co])).unwrap());
        let name = format!("{model}/{ci}x{co}@{h}");
        g.bench_function(format!("{name}/forward-backward-upsample"), |bch| {
            bch.iter(|| conv2d(&upsample2(x.as_tensor()).unwrap(), w.as_tensor(), Some(b.as_tensor()), 1, 1).unwrap().sum_all().unwrap().backward().unwrap())
        });
        g.bench_function(format!("{name}/forward-backward-phases"), |bch| {
            bch.iter(|| mri_train::upconv::upsample2_conv3x3(x.as_tensor(), w.as_tensor(), Some(b.as_tensor())).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    g.finish();
    // Stride-1 convs as shifted views of the padded image (mri_train::shiftconv, `auto`)
    // against im2col + GEMM (`im2col`), batch 32 as the default preset trains: the residual
    // CNN's and the DAE's 3×3 convs, and the 2×2 phase convs of the generators, which stay with
    // im2col. Names: `conv2d-stride1/<model>/<cin>x<cout>k<k>@<side>/<pass>-<algorithm>`.
    let mut g = c.benchmark_group("conv2d-stride1");
    g.sample_size(20);
    for &(model, ci, co, k, h) in STRIDE1_CONVS {
        let (x, w) = (Var::from_tensor(&randn(&[32, ci, h, h])).unwrap(), Var::from_tensor(&randn(&[co, ci, k, k])).unwrap());
        let name = format!("{model}/{ci}x{co}k{k}@{h}");
        for (label, algorithm) in [("im2col", ConvAlgorithm::Im2col), ("auto", ConvAlgorithm::Auto)] {
            g.bench_function(format!("{name}/forward-{label}"), |bch| {
                set_conv_algorithm(algorithm);
                bch.iter(|| conv2d(&x.as_tensor().detach(), w.as_tensor(), None, 1, k / 2).unwrap())
            });
            g.bench_function(format!("{name}/forward-backward-{label}"), |bch| {
                set_conv_algorithm(algorithm);
                bch.iter(|| conv2d(x.as_tensor(), w.as_tensor(), None, 1, k / 2).unwrap().sum_all().unwrap().backward().unwrap())
            });
        }
        set_conv_algorithm(ConvAlgorithm::Auto);
    }
    g.finish();

    // Eval-mode conv → batch norm → ReLU, batch 32 at the default preset's shapes: the conv's
    // bias as a pass of its own, then the norm (`unfused`), against the bias folded into the
    // norm's shift (`folded`, `Conv2d::forward_bn_t`). Names:
    // `conv-bn-eval/<model>/<cin>x<cout>s<stride>@<side>/<variant>`.
    let mut g = c.benchmark_group("conv-bn-eval");
    g.sample_size(30);
    for &(model, ci, co, s, h) in CONV_BN_LAYERS {
        let vm = candle_nn::VarMap::new();
        let vb = mri_train::seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu);
        let conv = mri_train::Conv2d::new(ci, co, 3, s, 1, vb.pp("conv")).unwrap();
        let bn = BatchNorm2d::new(co, vb.pp("bn")).unwrap();
        let x = randn(&[32, ci, h, h]);
        let name = format!("{model}/{ci}x{co}s{s}@{h}");
        g.bench_function(format!("{name}/unfused"), |bch| bch.iter(|| bn.forward_relu_t(&candle_core::Module::forward(&conv, &x).unwrap(), false).unwrap()));
        g.bench_function(format!("{name}/folded"), |bch| bch.iter(|| conv.forward_bn_t(&x, &bn, true, false).unwrap()));
    }
    g.finish();

    // A residual block's end, relu(h + skip), batch 32 at the default CNN's block outputs: the
    // sum and the ReLU as two passes (`unfused`) against `mri_train::add_relu` (`fused`), with
    // ReLU alone, ours and candle's, as the yardstick of one pass. Names:
    // `residual-add-relu/<channels>@<side>/<variant>`.
    let mut g = c.benchmark_group("residual-add-relu");
    g.sample_size(30);
    for &(ch, h) in &[(16, 32), (32, 16), (64, 8)] {
        let (a, b) = (randn(&[32, ch, h, h]), randn(&[32, ch, h, h]));
        let name = format!("{ch}@{h}");
        g.bench_function(format!("{name}/relu"), |bch| bch.iter(|| mri_train::relu(&a).unwrap()));
        g.bench_function(format!("{name}/relu-candle"), |bch| bch.iter(|| a.relu().unwrap()));
        g.bench_function(format!("{name}/unfused"), |bch| bch.iter(|| mri_train::relu(&(&a + &b).unwrap()).unwrap()));
        g.bench_function(format!("{name}/fused"), |bch| bch.iter(|| mri_train::add_relu(&a, &b).unwrap()));
        let (av, bv) = (Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap());
        g.bench_function(format!("{name}/unfused-forward-backward"), |bch| {
            bch.iter(|| mri_train::relu(&(av.as_tensor() + bv.as_tensor()).unwrap()).unwrap().sum_all().unwrap().backward().unwrap())
        });
        g.bench_function(format!("{name}/fused-forward-backward"), |bch| {
            bch.iter(|| mri_train::add_relu(av.as_tensor(), bv.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    g.finish();
}

/// (model, c_in, c_out, stride, input side) of the default preset's 3×3 conv → batch norm
/// layers at 64 px: the residual CNN's stem and blocks, the DAE's full-resolution layer.
const CONV_BN_LAYERS: &[(&str, usize, usize, usize, usize)] = &[
    ("default-cnn", 1, 16, 2, 64),
    ("default-cnn", 16, 16, 1, 32),
    ("default-cnn", 16, 32, 2, 32),
    ("default-cnn", 64, 64, 1, 8),
    ("default-dae", 8, 8, 1, 64),
];

/// (model, c_in, c_out, k, input side) of the default preset's stride-1 convs at 64 px.
const STRIDE1_CONVS: &[(&str, usize, usize, usize, usize)] = &[
    ("default-cnn", 16, 16, 3, 32),
    ("default-cnn", 32, 32, 3, 16),
    ("default-cnn", 64, 64, 3, 8),
    ("default-dae", 8, 8, 3, 64),
    ("default-dae", 16, 16, 3, 32),
    ("default-gan-g-phases", 64, 128, 2, 32),
    ("default-gan-g-phases", 128, 256, 2, 16),
];

/// (model, c_in, c_out, low-resolution side) of the convs after a ×2 upsampling at the default
/// preset (64 px) and the paper generator's.
const UPSAMPLE_CONVS: &[(&str, usize, usize, usize)] = &[
    ("default-gan-g", 64, 64, 4),
    ("default-gan-g", 64, 32, 8),
    ("default-gan-g", 32, 16, 16),
    ("default-gan-g", 16, 1, 32),
    ("default-gen-vae-dec", 128, 64, 8),
    ("default-gen-vae-dec", 64, 32, 16),
    ("default-gen-vae-dec", 32, 1, 32),
    ("default-dae", 64, 32, 8),
    ("default-dae", 32, 16, 16),
    ("default-dae", 16, 8, 32),
    ("paper-gan-g", 128, 64, 16),
];

criterion_group!(kernels, benches);
criterion_main!(kernels);
