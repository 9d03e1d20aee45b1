//! The fast conv kernels against candle's reference ops: outputs and both gradients, on fresh
//! random inputs with odd sizes, stride 2, padding and batch 1; relative error < 1e-4.

use candle_core::{DType, Device, Tensor, Var};
use mri_train::fastconv::{conv2d, conv_transpose2d};

fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (&a.to_dtype(DType::F32).unwrap(), &b.to_dtype(DType::F32).unwrap());
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    diff / scale
}

/// Asserts equal outputs and equal gradients (of a random linear functional) for `vars`.
fn assert_same_op(ours: Tensor, theirs: Tensor, vars: &[&Var], what: &str) {
    assert_eq!(ours.dims(), theirs.dims(), "{what}");
    assert!(rel_err(&ours, &theirs) < 1e-4, "forward {what}");
    let probe = Tensor::randn(0f32, 1f32, ours.shape(), ours.device()).unwrap().to_dtype(ours.dtype()).unwrap();
    let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    for v in vars {
        let (a, r) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
        assert!(rel_err(a, r) < 1e-4, "gradient {what}: {}", rel_err(a, r));
    }
}

/// (n, c_in, c_out, h, w, k, stride, pad)
type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

const CASES: &[Case] = &[
    (1, 1, 4, 7, 9, 3, 1, 1),
    (2, 3, 5, 16, 16, 3, 2, 1),
    (3, 2, 3, 11, 13, 4, 2, 1),
    (1, 4, 2, 9, 9, 3, 1, 0),
    (2, 3, 6, 15, 15, 5, 2, 2),
    (2, 5, 3, 8, 8, 1, 1, 0),
    // Stride 2 through the phase-split im2col / col2im: no padding, padding 2 on an odd side,
    // a 1×1 kernel (row by row), a 5×5 kernel.
    (2, 3, 4, 12, 12, 4, 2, 0),
    (1, 2, 3, 9, 11, 3, 2, 2),
    (2, 3, 2, 9, 7, 1, 2, 0),
    (3, 2, 2, 11, 9, 5, 2, 1),
    // Output planes of 256+ pixels take the per-image GEMM path (images in parallel from two
    // on; eleven images make uneven weight-gradient groups).
    (2, 3, 4, 37, 35, 3, 2, 1),
    (1, 2, 3, 20, 17, 3, 1, 1),
    (2, 1, 5, 18, 18, 4, 1, 2),
    (11, 2, 3, 17, 16, 3, 1, 1),
    // Stride 1 with more than one channel each way takes shifted views of the padded image
    // (shiftconv): an even kernel with more padding than half of it, a kernel as wide as the
    // padded image; and a stride-3 conv (im2col; a side where the stride divides H + 2p − k:
    // candle's own backward gets the others' shape wrong).
    (2, 3, 4, 13, 16, 3, 3, 1),
    (2, 3, 4, 10, 11, 4, 1, 2),
    (1, 2, 2, 5, 6, 7, 1, 1),
    // One input or one output channel: the direct kernel (both gradients, stride 1 and 2,
    // uneven weight-gradient groups, batch 1, a kernel wider than the padding).
    (3, 6, 1, 20, 19, 3, 1, 1),
    (9, 1, 7, 21, 17, 4, 2, 1),
    (2, 1, 1, 13, 13, 5, 2, 2),
    (1, 4, 1, 5, 7, 3, 2, 0),
    (2, 3, 1, 7, 7, 5, 1, 1),
    (2, 5, 1, 8, 9, 1, 1, 0),
];

#[test]
fn conv2d_matches_candle_forward_and_backward() {
    conv2d_cases_match_candle();
}

/// The same cases with every conv on im2col + GEMM (the shifted-view path's yardstick). The
/// switch is process-wide, so tests running beside this one may take either path: both are
/// checked against candle, so neither can fail them.
#[test]
fn conv2d_im2col_algorithm_matches_candle_forward_and_backward() {
    use mri_train::fastconv::{set_conv_algorithm, ConvAlgorithm};
    set_conv_algorithm(ConvAlgorithm::Im2col);
    let r = std::panic::catch_unwind(conv2d_cases_match_candle);
    set_conv_algorithm(ConvAlgorithm::Auto);
    r.unwrap();
}

fn conv2d_cases_match_candle() {
    let dev = Device::Cpu;
    for &(n, ci, co, h, w, k, s, p) in CASES {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, ci, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (co, ci, k, k), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, co, &dev).unwrap()).unwrap();
        let ours = conv2d(x.as_tensor(), wt.as_tensor(), Some(b.as_tensor()), s, p).unwrap();
        let theirs = x.as_tensor().conv2d(wt.as_tensor(), p, s, 1, 1).unwrap().broadcast_add(&b.as_tensor().reshape((1, co, 1, 1)).unwrap()).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        assert!(rel_err(&ours, &theirs) < 1e-4, "forward {:?}", (n, ci, co, h, w, k, s, p));
        // A random linear functional of the output, so every output element has its own weight.
        let probe = Tensor::randn(0f32, 1f32, ours.shape(), &dev).unwrap();
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("w", &wt), ("b", &b)] {
            let (a, r) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(rel_err(a, r) < 1e-4, "grad {name} {:?}: {}", (n, ci, co, h, w, k, s, p), rel_err(a, r));
        }
    }
}

#[test]
fn conv_transpose2d_matches_candle_forward_and_backward() {
    let dev = Device::Cpu;
    // (n, c_in, c_out, h, w, k, stride, pad): includes the mirrored decoder's k4 s2 p1 and a
    // study-style stride-1 kernel of side+1; the last four have output planes of 256+ pixels
    // (the per-image path): batch 1, eleven images (uneven weight-gradient groups), stride 1.
    let cases: &[Case] = &[
        (1, 3, 2, 5, 7, 4, 2, 1),
        (2, 4, 3, 8, 8, 4, 2, 1),
        (2, 2, 3, 4, 4, 5, 1, 0),
        (3, 3, 1, 6, 5, 3, 2, 0),
        (1, 2, 2, 7, 7, 3, 1, 1),
        (2, 3, 4, 9, 9, 4, 2, 1),
        (1, 2, 3, 8, 9, 4, 2, 1),
        (11, 2, 2, 8, 8, 4, 2, 1),
        (2, 3, 2, 17, 16, 3, 1, 1),
        (2, 2, 3, 6, 7, 5, 2, 2),
        (1, 3, 2, 5, 6, 3, 2, 0),
    ];
    for &(n, ci, co, h, w, k, s, p) in cases {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, ci, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (ci, co, k, k), &dev).unwrap()).unwrap();
        let ours = conv_transpose2d(x.as_tensor(), wt.as_tensor(), None, s, p, 0).unwrap();
        let theirs = x.as_tensor().conv_transpose2d(wt.as_tensor(), p, 0, s, 1).unwrap();
        assert_eq!(ours.dims(), theirs.dims(), "{:?}", (n, ci, co, h, w, k, s, p));
        assert!(rel_err(&ours, &theirs) < 1e-4, "forward {:?}", (n, ci, co, h, w, k, s, p));
        let probe = Tensor::randn(0f32, 1f32, ours.shape(), &dev).unwrap();
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("w", &wt)] {
            let (a, r) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(rel_err(a, r) < 1e-4, "grad {name} {:?}: {}", (n, ci, co, h, w, k, s, p), rel_err(a, r));
        }
    }
}

#[test]
fn layers_keep_candle_nn_weight_names() {
    let vm = candle_nn::VarMap::new();
    let vb = mri_train::seeded_var_builder(&vm, 0, candle_core::DType::F32, &Device::Cpu);
    let _ = mri_train::Conv2d::new(2, 3, 3, 1, 1, vb.pp("a")).unwrap();
    let _ = mri_train::ConvTranspose2d::new(3, 2, 4, 2, 1, vb.pp("b")).unwrap();
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["a.bias", "a.weight", "b.bias", "b.weight"]);
}

/// Our batch norm and candle-nn's over `c` channels, each with its variables, both given the
/// weight `a·(1..=c) + b` and the bias `0.5·(0..c) − 0.3`.
fn batch_norm_pair(c: usize, (a, b): (f64, f64)) -> (mri_train::BatchNorm2d, candle_nn::VarMap, candle_nn::BatchNorm, candle_nn::VarMap) {
    let dev = Device::Cpu;
    let vm_a = candle_nn::VarMap::new();
    let vm_b = candle_nn::VarMap::new();
    let ours = mri_train::BatchNorm2d::new(c, mri_train::seeded_var_builder(&vm_a, 0, candle_core::DType::F32, &dev)).unwrap();
    let cfg = candle_nn::BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };
    let theirs = candle_nn::batch_norm(c, cfg, mri_train::seeded_var_builder(&vm_b, 0, candle_core::DType::F32, &dev)).unwrap();
    for vm in [&vm_a, &vm_b] {
        let data = vm.data().lock().unwrap();
        data["weight"].set(&Tensor::arange(1f32, 1.0 + c as f32, &dev).unwrap().affine(a, b).unwrap()).unwrap();
        data["bias"].set(&Tensor::arange(0f32, c as f32, &dev).unwrap().affine(0.5, -0.3).unwrap()).unwrap();
    }
    (ours, vm_a, theirs, vm_b)
}

#[test]
fn batch_norm_matches_candle_nn_in_training_and_eval() {
    use candle_core::ModuleT;
    let dev = Device::Cpu;
    for &(n, c, h, w) in &[(1usize, 3usize, 5usize, 7usize), (4, 2, 8, 8), (3, 5, 1, 1)] {
        // Non-trivial affine parameters in both.
        let (ours, vm_a, theirs, vm_b) = batch_norm_pair(c, (1.0, 0.0));
        let x = Var::from_tensor(&(Tensor::randn(0f32, 1f32, (n, c, h, w), &dev).unwrap() * 3.0).unwrap().affine(1.0, 2.0).unwrap()).unwrap();
        let ya = ours.forward_t(x.as_tensor(), true).unwrap();
        let yb = theirs.forward_t(x.as_tensor(), true).unwrap();
        assert!(rel_err(&ya, &yb) < 1e-4, "forward {:?}", (n, c, h, w));
        let probe = Tensor::randn(0f32, 1f32, ya.shape(), &dev).unwrap();
        let ga = (&ya * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&yb * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(rel_err(ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap()) < 1e-4, "grad x {:?}", (n, c, h, w));
        for name in ["weight", "bias"] {
            let (ta, tb) = (vm_a.data().lock().unwrap()[name].as_tensor().clone(), vm_b.data().lock().unwrap()[name].as_tensor().clone());
            assert!(rel_err(ga.get(&ta).unwrap(), gb.get(&tb).unwrap()) < 1e-4, "grad {name}");
        }
        assert!(rel_err(ours.running_mean(), theirs.running_mean()) < 1e-5);
        assert!(rel_err(ours.running_var(), theirs.running_var()) < 1e-5);
        let (ea, eb) = (ours.forward_t(x.as_tensor(), false).unwrap(), theirs.forward_t(x.as_tensor(), false).unwrap());
        assert!(rel_err(&ea, &eb) < 1e-4, "eval {:?}", (n, c, h, w));
    }
}

/// Batch norm with the ReLU fused into its kernel equals candle-nn's batch norm followed by
/// candle's ReLU: outputs, running statistics, and the gradients of x, weight and bias.
#[test]
fn fused_batch_norm_relu_matches_candle_nn_then_relu() {
    use candle_core::ModuleT;
    let dev = Device::Cpu;
    for &(n, c, h, w) in &[(1usize, 3usize, 5usize, 7usize), (4, 2, 8, 8), (3, 5, 1, 1), (2, 4, 17, 9)] {
        // Weights of mixed signs, so that the ReLU cuts some channels more than others.
        let (ours, vm_a, theirs, _) = batch_norm_pair(c, (0.7, -1.5));
        let x = Var::from_tensor(&Tensor::randn(0f32, 2f32, (n, c, h, w), &dev).unwrap().affine(1.0, 1.0).unwrap()).unwrap();
        let ya = ours.forward_relu_t(x.as_tensor(), true).unwrap();
        let yb = theirs.forward_t(x.as_tensor(), true).unwrap().relu().unwrap();
        let zeros = ya.eq(0f32).unwrap().to_dtype(candle_core::DType::F32).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(zeros > 0.1 && zeros < 0.9, "the ReLU should cut part of the batch: {zeros}");
        let (wa, ba) = {
            let data = vm_a.data().lock().unwrap();
            (data["weight"].clone(), data["bias"].clone())
        };
        assert_same_op(ya, yb, &[&x], &format!("bn+relu {:?}", (n, c, h, w)));
        assert!(rel_err(ours.running_mean(), theirs.running_mean()) < 1e-5);
        assert!(rel_err(ours.running_var(), theirs.running_var()) < 1e-5);
        let (ea, eb) = (ours.forward_relu_t(x.as_tensor(), false).unwrap(), theirs.forward_t(x.as_tensor(), false).unwrap().relu().unwrap());
        assert!(rel_err(&ea, &eb) < 1e-4, "eval {:?}", (n, c, h, w));
        // Weight and bias gradients: ours against the unfused composition of the same module.
        let probe = Tensor::randn(0f32, 1f32, (n, c, h, w), &dev).unwrap();
        let g1 = (ours.forward_relu_t(x.as_tensor(), true).unwrap() * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (ours.forward_t(x.as_tensor(), true).unwrap().relu().unwrap() * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&wa, &ba, &x] {
            assert!(rel_err(g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap()) < 1e-4);
        }
    }
}

/// Eval mode (running statistics), with and without the fused ReLU: outputs and the gradients
/// of x, weight and bias equal candle-nn's eval batch norm (then candle's ReLU), on running
/// statistics moved away from their initial 0 / 1 by one training pass.
#[test]
fn eval_batch_norm_and_its_gradients_match_candle_nn() {
    use candle_core::ModuleT;
    let dev = Device::Cpu;
    for &(n, c, h, w) in &[(1usize, 3usize, 5usize, 7usize), (4, 2, 8, 8), (3, 5, 1, 1), (2, 4, 17, 9)] {
        for relu in [false, true] {
            let (ours, vm_a, theirs, vm_b) = batch_norm_pair(c, (0.7, -1.5));
            let warm = Tensor::randn(0f32, 2f32, (n, c, h, w), &dev).unwrap().affine(1.0, 1.5).unwrap();
            ours.forward_t(&warm, true).unwrap();
            theirs.forward_t(&warm, true).unwrap();
            let x = Var::from_tensor(&Tensor::randn(0f32, 2f32, (n, c, h, w), &dev).unwrap().affine(1.0, 1.0).unwrap()).unwrap();
            let (ya, yb) = if relu {
                (ours.forward_relu_t(x.as_tensor(), false).unwrap(), theirs.forward_t(x.as_tensor(), false).unwrap().relu().unwrap())
            } else {
                (ours.forward_t(x.as_tensor(), false).unwrap(), theirs.forward_t(x.as_tensor(), false).unwrap())
            };
            let what = format!("eval bn (relu {relu}) {:?}", (n, c, h, w));
            assert_eq!(ya.dims(), yb.dims(), "{what}");
            assert!(rel_err(&ya, &yb) < 1e-4, "forward {what}");
            let probe = Tensor::randn(0f32, 1f32, ya.shape(), &dev).unwrap();
            let ga = (&ya * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&yb * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(rel_err(ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap()) < 1e-4, "grad x {what}");
            for name in ["weight", "bias"] {
                let (ta, tb) = (vm_a.data().lock().unwrap()[name].as_tensor().clone(), vm_b.data().lock().unwrap()[name].as_tensor().clone());
                assert!(rel_err(ga.get(&ta).unwrap(), gb.get(&tb).unwrap()) < 1e-4, "grad {name} {what}");
            }
        }
    }
}

#[test]
fn max_pool_matches_candle() {
    let dev = Device::Cpu;
    for &(n, c, h, w) in &[(1usize, 1usize, 2usize, 2usize), (2, 3, 8, 6), (3, 2, 16, 16)] {
        // Random values have no ties, where the two backward rules differ.
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, c, h, w), &dev).unwrap()).unwrap();
        let ya = mri_train::max_pool2(x.as_tensor()).unwrap();
        let yb = x.as_tensor().max_pool2d(2).unwrap();
        assert_eq!(ya.flatten_all().unwrap().to_vec1::<f32>().unwrap(), yb.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let probe = Tensor::randn(0f32, 1f32, ya.shape(), &dev).unwrap();
        let ga = (&ya * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&yb * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let (da, db) = (ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap());
        // Each output's gradient goes wholly to its window's maximum: the input gradient sums
        // to the probe's sum and holds exactly the probe values at the argmax positions.
        let (sa, sp) = (da.sum_all().unwrap().to_scalar::<f32>().unwrap(), probe.sum_all().unwrap().to_scalar::<f32>().unwrap());
        assert!((sa - sp).abs() < 1e-4 * sp.abs().max(1.0), "{sa} vs {sp}");
        // candle 0.11.1 (backprop.rs, Op::MaxPool2D) multiplies the routed gradient by the
        // fraction of the window that is maximal — 1/4 for a unique maximum — instead of
        // dividing by the number of ties, so its gradient is a quarter of the true one.
        assert!(rel_err(da, &(db * 4.0).unwrap()) < 1e-6);
    }
}

#[test]
fn upsample_matches_candle() {
    let dev = Device::Cpu;
    for &(n, c, h, w) in &[(1usize, 1usize, 1usize, 1usize), (2, 3, 4, 5), (3, 2, 8, 8)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, c, h, w), &dev).unwrap()).unwrap();
        let ya = mri_train::fastnorm::upsample2(x.as_tensor()).unwrap();
        let yb = x.as_tensor().upsample_nearest2d(2 * h, 2 * w).unwrap();
        assert_eq!(ya.flatten_all().unwrap().to_vec1::<f32>().unwrap(), yb.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let probe = Tensor::randn(0f32, 1f32, ya.shape(), &dev).unwrap();
        let ga = (&ya * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&yb * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(rel_err(ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap()) < 1e-5);
    }
}

/// Batches whose im2col matrix exceeds one chunk (16 MB) are processed image by image; the
/// result and gradients must not change.
#[test]
fn chunked_batches_match_candle() {
    let dev = Device::Cpu;
    let n = 3;
    let randn = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1f32, shape, &dev).unwrap()).unwrap();
    // 16·9 rows × 130·131 columns per image: over 4 M elements, so one image per chunk.
    let (x, wt) = (randn(&[n, 16, 130, 131]), randn(&[4, 16, 3, 3]));
    let ours = conv2d(x.as_tensor(), wt.as_tensor(), None, 1, 1).unwrap();
    let theirs = x.as_tensor().conv2d(wt.as_tensor(), 1, 1, 1, 1).unwrap();
    assert_same_op(ours, theirs, &[&x, &wt], "conv2d");
    // Transposed: Cout·k² = 1024 rows × 70·66 columns per image.
    let (x, wt) = (randn(&[n, 4, 70, 66]), randn(&[4, 64, 4, 4]));
    let ours = conv_transpose2d(x.as_tensor(), wt.as_tensor(), None, 2, 1, 0).unwrap();
    let theirs = x.as_tensor().conv_transpose2d(wt.as_tensor(), 1, 0, 2, 1).unwrap();
    assert_same_op(ours, theirs, &[&x, &wt], "conv_transpose2d");
}

/// Output padding (< stride) adds rows/columns that kernel taps reach when padding > 0.
#[test]
fn conv_transpose2d_output_padding_matches_candle() {
    let dev = Device::Cpu;
    // Inputs of 5×6 (small output planes) and 9×9 (planes of 256+ pixels: the per-image path).
    for &(k, s, p, op, h, w) in &[(3, 2, 1, 1, 5, 6), (4, 2, 1, 1, 5, 6), (3, 3, 0, 2, 5, 6), (5, 2, 2, 1, 5, 6), (3, 2, 1, 1, 9, 9), (4, 2, 1, 1, 9, 9)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (2, 3, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (3, 2, k, k), &dev).unwrap()).unwrap();
        let ours = conv_transpose2d(x.as_tensor(), wt.as_tensor(), None, s, p, op).unwrap();
        let theirs = x.as_tensor().conv_transpose2d(wt.as_tensor(), p, op, s, 1).unwrap();
        assert_same_op(ours, theirs, &[&x, &wt], &format!("k{k} s{s} p{p} op{op}"));
    }
}

#[test]
fn channel_bias_matches_broadcast_add_forward_and_backward() {
    let dev = Device::Cpu;
    for &(n, c, h, w) in &[(3usize, 5usize, 7usize, 9usize), (1, 1, 1, 1), (2, 4, 1, 6)] {
        let y = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, c, h, w), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, c, &dev).unwrap()).unwrap();
        let ours = mri_train::fastconv::add_channel_bias(y.as_tensor(), b.as_tensor()).unwrap();
        let theirs = y.as_tensor().broadcast_add(&b.as_tensor().reshape((1, c, 1, 1)).unwrap()).unwrap();
        assert_same_op(ours, theirs, &[&y, &b], &format!("channel bias {:?}", (n, c, h, w)));
    }
    // A non-contiguous input (a transposed view) takes the same path after a copy.
    let y = Var::from_tensor(&Tensor::randn(0f32, 1f32, (2, 3, 6, 5), &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, 3, &dev).unwrap()).unwrap();
    let yt = y.as_tensor().transpose(2, 3).unwrap();
    let ours = mri_train::fastconv::add_channel_bias(&yt, b.as_tensor()).unwrap();
    let theirs = yt.broadcast_add(&b.as_tensor().reshape((1, 3, 1, 1)).unwrap()).unwrap();
    assert_same_op(ours, theirs, &[&y, &b], "channel bias, transposed input");
    // The bias gradient alone: per-channel sums over batch and plane.
    let dy = Tensor::randn(0f32, 1f32, (4, 3, 5, 7), &dev).unwrap();
    let sums = mri_train::fastconv::channel_sums(&dy).unwrap();
    assert!(rel_err(&sums, &dy.sum((0, 2, 3)).unwrap()) < 1e-5);
}

#[test]
fn untracked_input_gets_no_gradient_and_the_same_weight_gradient() {
    let dev = Device::Cpu;
    // Per-image path (planes of 256+ pixels), batch 1 and batch 3, as the CNN's first layer;
    // then the batched path of small planes.
    for &(n, ci, co, h, k, s, p) in &[(3usize, 1usize, 4usize, 33usize, 3usize, 2usize, 1usize), (1, 2, 3, 20, 3, 1, 1), (2, 1, 3, 9, 3, 1, 1)] {
        let x = Tensor::randn(0f32, 1f32, (n, ci, h, h), &dev).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (co, ci, k, k), &dev).unwrap()).unwrap();
        let ours = conv2d(&x, wt.as_tensor(), None, s, p).unwrap();
        let theirs = x.conv2d(wt.as_tensor(), p, s, 1, 1).unwrap();
        assert_no_input_gradient_same_weight_gradient(ours, theirs, &x, &wt);
    }
}

/// Backpropagates one random probe through our op's output and candle's: the untracked input
/// `x` gets no gradient from ours, and the weight gradients agree.
fn assert_no_input_gradient_same_weight_gradient(ours: Tensor, theirs: Tensor, x: &Tensor, wt: &Var) {
    let probe = Tensor::randn(0f32, 1f32, ours.shape(), ours.device()).unwrap();
    let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g1.get(x).is_none(), "an untracked input needs no gradient");
    let (a, r) = (g1.get(wt.as_tensor()).unwrap(), g2.get(wt.as_tensor()).unwrap());
    assert!(rel_err(a, r) < 1e-4, "weight gradient: {}", rel_err(a, r));
}

#[test]
fn untracked_input_of_a_transposed_conv_gets_no_gradient() {
    let dev = Device::Cpu;
    // Small output planes (chunked path), then 18×18 ones (per-image path), batch 2 and 1.
    for &(n, h) in &[(2usize, 5usize), (2, 9), (1, 9)] {
        let x = Tensor::randn(0f32, 1f32, (n, 3, h, h + 1), &dev).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (3, 2, 4, 4), &dev).unwrap()).unwrap();
        let ours = conv_transpose2d(&x, wt.as_tensor(), None, 2, 1, 0).unwrap();
        let theirs = x.conv_transpose2d(wt.as_tensor(), 1, 0, 2, 1).unwrap();
        assert_no_input_gradient_same_weight_gradient(ours, theirs, &x, &wt);
    }
}

#[test]
fn fused_activations_match_candle_forward_and_backward() {
    let dev = Device::Cpu;
    // Odd sizes, one large enough for several parallel chunks, and a non-contiguous input.
    for dims in [vec![1usize, 1, 3, 5], vec![2, 3, 7, 11], vec![3, 5, 101, 67]] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, dims.as_slice(), &dev).unwrap()).unwrap();
        for slope in [0.2, 0.01] {
            let ours = mri_train::leaky_relu(x.as_tensor(), slope).unwrap();
            let theirs = candle_nn::ops::leaky_relu(x.as_tensor(), slope).unwrap();
            assert_same_op(ours, theirs, &[&x], &format!("leaky relu {slope} {dims:?}"));
        }
        // Random normals are never exactly 0, where the two ReLU gradients differ by convention.
        assert_same_op(mri_train::relu(x.as_tensor()).unwrap(), x.as_tensor().relu().unwrap(), &[&x], &format!("relu {dims:?}"));
        let t = x.as_tensor().transpose(2, 3).unwrap();
        assert_same_op(
            mri_train::leaky_relu(&t, 0.2).unwrap(),
            candle_nn::ops::leaky_relu(&t, 0.2).unwrap(),
            &[&x],
            &format!("leaky relu of a transpose {dims:?}"),
        );
    }
    // PyTorch's rule at 0: no gradient through ReLU, `slope` of it through leaky ReLU.
    let z = Var::from_tensor(&Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap()).unwrap();
    let g = mri_train::relu(z.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(z.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![0.0; 4]);
    let g = mri_train::leaky_relu(z.as_tensor(), 0.2).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(z.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![0.2; 4]);
    // NaN stays NaN through both (a diverging run must show in its loss).
    let nan = Tensor::new(&[f32::NAN, 1.0], &dev).unwrap();
    assert!(mri_train::relu(&nan).unwrap().to_vec1::<f32>().unwrap()[0].is_nan());
    assert!(mri_train::add_relu(&nan, &nan).unwrap().to_vec1::<f32>().unwrap()[0].is_nan());
}

/// A residual block's `relu(h + skip)` as one op: the same values and the same gradient into
/// each of the two inputs as candle's add then ReLU, on odd sizes, several parallel chunks, a
/// transposed (non-contiguous) input, and a detached second input (the gradient of the tracked
/// one is the mask of a + b > 0).
#[test]
fn fused_add_relu_matches_candle_add_then_relu() {
    let dev = Device::Cpu;
    for dims in [vec![1usize, 1, 3, 5], vec![2, 3, 7, 11], vec![3, 5, 101, 67]] {
        let a = Var::from_tensor(&Tensor::randn(0f32, 1f32, dims.as_slice(), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, dims.as_slice(), &dev).unwrap()).unwrap();
        let (ta, tb) = (a.as_tensor(), b.as_tensor());
        let ours = mri_train::add_relu(ta, tb).unwrap();
        let theirs = (ta + tb).unwrap().relu().unwrap();
        assert_eq!(ours.to_vec1_flat(), theirs.to_vec1_flat(), "values {dims:?}");
        assert_same_op(ours, theirs, &[&a, &b], &format!("add relu {dims:?}"));
        let bt = tb.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
        assert_same_op(mri_train::add_relu(ta, &bt).unwrap(), (ta + &bt).unwrap().relu().unwrap(), &[&a, &b], &format!("transposed {dims:?}"));
        let fixed = tb.detach();
        let g = mri_train::add_relu(ta, &fixed).unwrap().sum_all().unwrap().backward().unwrap();
        let mask = (ta + &fixed).unwrap().gt(0f64).unwrap().to_dtype(candle_core::DType::F32).unwrap();
        assert_eq!(g.get(ta).unwrap().to_vec1_flat(), mask.to_vec1_flat(), "gradient = the mask of a + b > 0 {dims:?}");
    }
}

trait Flat {
    fn to_vec1_flat(&self) -> Vec<f32>;
}

impl Flat for Tensor {
    fn to_vec1_flat(&self) -> Vec<f32> {
        self.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}

/// Per-image shift built from candle's ops: pad by `m`, one window per image, cat.
fn translate_reference(x: &Tensor, offsets: &[(isize, isize)], fill: f64, m: usize) -> Tensor {
    let (_, _, h, w) = x.dims4().unwrap();
    let padded = (x - fill).unwrap().pad_with_zeros(2, m, m).unwrap().pad_with_zeros(3, m, m).unwrap();
    let parts: Vec<Tensor> = offsets
        .iter()
        .enumerate()
        .map(|(i, &(dy, dx))| {
            padded.narrow(0, i, 1).unwrap().narrow(2, (m as isize - dy) as usize, h).unwrap().narrow(3, (m as isize - dx) as usize, w).unwrap()
        })
        .collect();
    (Tensor::cat(&parts, 0).unwrap() + fill).unwrap()
}

#[test]
fn translate_matches_pad_narrow_cat_forward_and_backward() {
    let dev = Device::Cpu;
    // Odd sides, shifts in every direction, zero, and one past the image (all fill).
    let offsets = [(0isize, 0isize), (2, -3), (-1, 4), (5, 5), (-7, 0), (8, -9)];
    for (c, h, w) in [(1usize, 7usize, 9usize), (3, 8, 5)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (offsets.len(), c, h, w), &dev).unwrap()).unwrap();
        let ours = mri_train::translate(x.as_tensor(), &offsets, -1.0).unwrap();
        let theirs = translate_reference(x.as_tensor(), &offsets, -1.0, 9);
        assert_same_op(ours, theirs, &[&x], &format!("translate {c}x{h}x{w}"));
    }
    let x = Tensor::zeros((2, 1, 3, 3), candle_core::DType::F32, &dev).unwrap();
    assert!(mri_train::translate(&x, &[(0, 0)], -1.0).is_err(), "one offset per image");
}

/// Stride-1 transposed convs with kernels of `FFT_MIN_KERNEL` taps and more run as FFT products
/// (the study decoder's layout: kernel = side + 1, no padding; odd and rectangular planes,
/// padding, batch 1, one input or output channel, transform lengths that are not powers of two).
#[test]
fn fft_conv_transpose2d_matches_candle_forward_and_backward() {
    let dev = Device::Cpu;
    let k0 = mri_train::fftconv::FFT_MIN_KERNEL;
    let cases: &[(usize, usize, usize, usize, usize, usize, usize)] =
        &[(2, 4, 3, 8, 8, k0, 0), (1, 3, 1, 16, 16, 17, 0), (3, 2, 5, 7, 5, k0 + 1, 2), (1, 1, 2, 9, 6, k0 + 4, 5), (2, 5, 4, 11, 13, k0 + 2, 1)];
    for &(n, ci, co, h, w, k, p) in cases {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, ci, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (ci, co, k, k), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, co, &dev).unwrap()).unwrap();
        let ours = conv_transpose2d(x.as_tensor(), wt.as_tensor(), Some(b.as_tensor()), 1, p, 0).unwrap();
        let theirs = x.as_tensor().conv_transpose2d(wt.as_tensor(), p, 0, 1, 1).unwrap().broadcast_add(&b.as_tensor().reshape((1, co, 1, 1)).unwrap()).unwrap();
        assert_same_op(ours, theirs, &[&x, &wt, &b], &format!("fft {:?}", (n, ci, co, h, w, k, p)));
    }
}

/// The FFT op itself is exact for any kernel (small ones too), and an untracked input (the
/// images) gets no gradient while the kernel's is still right.
#[test]
fn fft_op_matches_candle_for_small_kernels_and_skips_untracked_inputs() {
    let dev = Device::Cpu;
    for &(n, ci, co, h, w, k, p) in &[(2, 3, 2, 5, 7, 3, 1), (1, 2, 3, 6, 6, 1, 0), (3, 1, 1, 4, 9, 5, 2)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, ci, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (ci, co, k, k), &dev).unwrap()).unwrap();
        let ours = mri_train::fftconv::conv_transpose2d(x.as_tensor(), wt.as_tensor(), p).unwrap();
        let theirs = x.as_tensor().conv_transpose2d(wt.as_tensor(), p, 0, 1, 1).unwrap();
        assert_same_op(ours, theirs, &[&x, &wt], &format!("fft op {:?}", (n, ci, co, h, w, k, p)));
    }
    let images = Tensor::randn(0f32, 1f32, (2, 3, 6, 5), &dev).unwrap();
    let wt = Var::from_tensor(&Tensor::randn(0f32, 1f32, (3, 2, 10, 10), &dev).unwrap()).unwrap();
    let ours = conv_transpose2d(&images, wt.as_tensor(), None, 1, 0, 0).unwrap();
    let theirs = images.conv_transpose2d(wt.as_tensor(), 0, 0, 1, 1).unwrap();
    let probe = Tensor::randn(0f32, 1f32, ours.shape(), &dev).unwrap();
    let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g1.get(&images).is_none(), "an untracked input must get no gradient");
    assert!(rel_err(g1.get(wt.as_tensor()).unwrap(), g2.get(wt.as_tensor()).unwrap()) < 1e-4);
}

/// Upsample ×2 then conv 3×3 as four 2×2 phase convs (mri_train::upconv) against candle's
/// `upsample_nearest2d` then `conv2d`: f32 takes the CPU kernels (GEMM and direct convs, the
/// fused interleave), f64 the candle-op path that GPUs take; odd and one-pixel sides, one
/// input or output channel, batch 1 and 11.
#[test]
fn upsample_conv3x3_matches_upsample_then_conv_forward_and_backward() {
    use mri_train::upconv::upsample2_conv3x3;
    let dev = Device::Cpu;
    // (n, c_in, c_out, h, w)
    let cases = [(1, 3, 5, 7, 9), (2, 1, 4, 4, 4), (3, 6, 1, 5, 3), (2, 4, 3, 1, 2), (11, 2, 3, 8, 8), (2, 3, 4, 20, 17), (1, 16, 1, 32, 32)];
    for dtype in [DType::F32, DType::F64] {
        for &(n, ci, co, h, w) in &cases {
            let rand = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1f32, shape, &dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let (x, wt, b) = (rand(&[n, ci, h, w]), rand(&[co, ci, 3, 3]), rand(&[co]));
            let ours = upsample2_conv3x3(x.as_tensor(), wt.as_tensor(), Some(b.as_tensor())).unwrap();
            let up = x.as_tensor().upsample_nearest2d(2 * h, 2 * w).unwrap();
            let theirs = up.conv2d(wt.as_tensor(), 1, 1, 1, 1).unwrap().broadcast_add(&b.as_tensor().reshape((1, co, 1, 1)).unwrap()).unwrap();
            assert_same_op(ours, theirs, &[&x, &wt, &b], &format!("upsample + conv3x3 {dtype:?} {:?}", (n, ci, co, h, w)));
        }
    }
    // Conv2d::forward_upsampled: phases for 3×3 / stride 1 / padding 1, upsample + conv else.
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let x = Tensor::randn(0f32, 1f32, (2, 3, 6, 5), &dev).unwrap();
    for (k, pad, name) in [(3, 1, "a"), (5, 2, "b"), (3, 0, "c")] {
        let conv = mri_train::Conv2d::new(3, 4, k, 1, pad, vb.pp(name)).unwrap();
        let ours = conv.forward_upsampled(&x).unwrap();
        let theirs = candle_core::Module::forward(&conv, &mri_train::upsample2(&x).unwrap()).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        assert!(rel_err(&ours, &theirs) < 1e-4, "forward_upsampled k {k} pad {pad}");
    }
}

/// A conv followed by batch norm (`Conv2d::forward_bn_t`, and its upsampled form): in training
/// mode the same bits as the unfused pair; in eval mode, with the conv's bias folded into the
/// normalisation's shift, the same output and the same gradients of the input, the kernel, the
/// conv bias and the norm's weight and bias (relative error < 1e-4), with and without ReLU.
#[test]
fn conv_then_batch_norm_folds_the_bias_in_eval_mode() {
    use candle_core::{Module, ModuleT};
    let dev = Device::Cpu;
    for &(n, c, o, side, stride, upsampled) in &[(2usize, 3usize, 4usize, 9usize, 1usize, false), (1, 2, 5, 12, 2, false), (3, 4, 3, 6, 1, true)] {
        for relu in [false, true] {
            let vm = candle_nn::VarMap::new();
            let vb = mri_train::seeded_var_builder(&vm, 7, DType::F32, &dev);
            let conv = mri_train::Conv2d::new(c, o, 3, stride, 1, vb.pp("conv")).unwrap();
            let bn = mri_train::BatchNorm2d::new(o, vb.pp("bn")).unwrap();
            {
                // A non-zero conv bias and norm parameters away from 1 / 0.
                let data = vm.data().lock().unwrap();
                data["conv.bias"].set(&Tensor::arange(0f32, o as f32, &dev).unwrap().affine(0.3, -0.4).unwrap()).unwrap();
                data["bn.weight"].set(&Tensor::arange(1f32, 1.0 + o as f32, &dev).unwrap().affine(0.6, -1.2).unwrap()).unwrap();
                data["bn.bias"].set(&Tensor::arange(0f32, o as f32, &dev).unwrap().affine(-0.2, 0.5).unwrap()).unwrap();
            }
            let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (n, c, side, side), &dev).unwrap()).unwrap();
            let conv_out = |x: &Tensor| if upsampled { conv.forward_upsampled(x) } else { conv.forward(x) }.unwrap();
            let folded = |x: &Tensor, train: bool| {
                if upsampled { conv.forward_upsampled_bn_t(x, &bn, relu, train) } else { conv.forward_bn_t(x, &bn, relu, train) }.unwrap()
            };
            let unfused = |x: &Tensor, train: bool| if relu { bn.forward_relu_t(&conv_out(x), train) } else { bn.forward_t(&conv_out(x), train) }.unwrap();
            let what = format!("{:?} relu {relu}", (n, c, o, side, stride, upsampled));
            // Training mode: the same bits (each call also moves the running statistics once,
            // which leaves them away from 0 / 1 for the eval check).
            let a: Vec<f32> = folded(x.as_tensor(), true).flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = unfused(x.as_tensor(), true).flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(a, b, "train {what}");
            let vars = vm.all_vars();
            let mut all: Vec<&Var> = vars.iter().collect();
            all.push(&x);
            let (ya, yb) = (folded(x.as_tensor(), false), unfused(x.as_tensor(), false));
            if relu {
                let zeros = ya.eq(0f32).unwrap().to_dtype(DType::F32).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(zeros > 0.05 && zeros < 0.95, "the ReLU should cut part of the output: {zeros} ({what})");
            }
            assert_same_op(ya, yb, &all, &format!("eval {what}"));
        }
    }
}
