//! `mri_train::Linear` against candle-nn's `Linear`: the same outputs bit for bit, the same
//! gradients up to rounding, each gradient in its variable's own layout, no input gradient for
//! an untracked input, and candle-nn's path for inputs it does not take.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::VarMap;

fn random(shape: &[usize], seed: u64) -> Tensor {
    mri_train::seeded_normal(seed, "t", shape, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (values(a), values(b));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(&b).fold(0f32, |m, (p, q)| m.max((p - q).abs() / scale))
}

/// Forward values, and the gradients of `sum(y · r)` for a random `r`, of both layers.
fn compare(n: usize, d_in: usize, d_out: usize, seed: u64) {
    let x = Var::from_tensor(&random(&[n, d_in], seed)).unwrap();
    let w = Var::from_tensor(&random(&[d_out, d_in], seed + 1)).unwrap();
    let b = Var::from_tensor(&random(&[d_out], seed + 2)).unwrap();
    let r = random(&[n, d_out], seed + 3);
    let ours = mri_train::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let theirs = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let (y1, y2) = (ours.forward(x.as_tensor()).unwrap(), theirs.forward(x.as_tensor()).unwrap());
    assert_eq!(y1.dims(), &[n, d_out]);
    assert_eq!(values(&y1), values(&y2), "forward of {n}×{d_in} → {d_out} differs from candle-nn's");
    let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
        let (a, e) = (g1.get(v.as_tensor()).expect("our gradient"), g2.get(v.as_tensor()).expect("candle's gradient"));
        assert_eq!(a.dims(), v.as_tensor().dims(), "d{name} shape");
        assert!(a.is_contiguous(), "d{name} is stored in the variable's layout");
        let err = max_rel_err(a, e);
        assert!(err < 1e-5, "d{name} of {n}×{d_in} → {d_out}: relative error {err}");
    }
}

#[test]
fn matches_candle_nn_forward_and_backward_on_odd_sizes() {
    compare(1, 1, 1, 10);
    compare(1, 37, 5, 20);
    compare(7, 129, 3, 30);
    compare(32, 300, 64, 40);
    compare(5, 8, 1000, 50);
}

#[test]
fn an_untracked_input_gets_no_gradient_and_the_weights_still_do() {
    let x = random(&[4, 9], 1);
    let w = Var::from_tensor(&random(&[3, 9], 2)).unwrap();
    let b = Var::from_tensor(&random(&[3], 3)).unwrap();
    let layer = mri_train::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let grads = layer.forward(&x).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    // d sum(y) / db = N for every output; dW row o = column sums of x.
    assert_eq!(values(grads.get(b.as_tensor()).unwrap()), vec![4.0; 3]);
    let col_sums = x.sum(0).unwrap();
    for o in 0..3 {
        let row = grads.get(w.as_tensor()).unwrap().get(o).unwrap();
        assert!(max_rel_err(&row, &col_sums) < 1e-6);
    }
}

#[test]
fn other_inputs_take_candle_nn_path() {
    // Rank 3 and no bias: candle-nn's layer, the same values.
    let w = random(&[4, 6], 5);
    let x3 = random(&[2, 3, 6], 6);
    let b = random(&[4], 7);
    let ours = mri_train::Linear::new(w.clone(), Some(b.clone()));
    assert_eq!(values(&ours.forward(&x3).unwrap()), values(&candle_nn::Linear::new(w.clone(), Some(b)).forward(&x3).unwrap()));
    let x2 = random(&[3, 6], 8);
    let no_bias = mri_train::Linear::new(w.clone(), None);
    assert_eq!(values(&no_bias.forward(&x2).unwrap()), values(&candle_nn::Linear::new(w, None).forward(&x2).unwrap()));
    // A shape mismatch is an error, not a panic.
    let bad = mri_train::Linear::new(random(&[4, 5], 9), Some(random(&[4], 10)));
    assert!(bad.forward(&x2).is_err());
}

#[test]
fn linear_initialises_as_candle_nn() {
    let (vm1, vm2) = (VarMap::new(), VarMap::new());
    let vb1 = mri_train::seeded_var_builder(&vm1, 3, DType::F32, &Device::Cpu);
    let vb2 = mri_train::seeded_var_builder(&vm2, 3, DType::F32, &Device::Cpu);
    let ours = mri_train::linear(11, 5, vb1.pp("fc")).unwrap();
    let theirs = candle_nn::linear(11, 5, vb2.pp("fc")).unwrap();
    assert_eq!(values(ours.weight()), values(theirs.weight()));
    assert_eq!(values(ours.bias().unwrap()), values(theirs.bias().unwrap()));
}
