//! The gradient bookkeeping of the patched candle-core (vendor/candle-core/PATCHED.md): the
//! first gradient reaching a node is stored as is, later ones are added (or subtracted). These
//! pin what the models rely on: sums over fan-in, the subtracting rules, a first gradient that
//! arrives as a strided view, and one gradient shared by both inputs of an add.

use candle_core::{Device, Tensor, Var};

fn var(values: &[f32], shape: (usize, usize)) -> Var {
    Var::from_tensor(&Tensor::from_slice(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn grad_of(grads: &candle_core::backprop::GradStore, v: &Var) -> Vec<f32> {
    let g = grads.get(v.as_tensor()).expect("a gradient for the variable");
    assert!(g.is_contiguous(), "stored gradients are contiguous");
    g.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn fan_in_gradients_are_summed() {
    // x feeds two products and a plain sum: dx = a + b + 1.
    let x = var(&[1.0, -2.0, 3.0, 0.5, 0.0, -1.5], (2, 3));
    let a = Tensor::from_slice(&[0.5f32, 1.0, -1.0, 2.0, 3.0, -0.25], (2, 3), &Device::Cpu).unwrap();
    let b = Tensor::from_slice(&[2.0f32, -3.0, 0.5, 1.0, -1.0, 4.0], (2, 3), &Device::Cpu).unwrap();
    let y = ((x.as_tensor() * &a).unwrap().sum_all().unwrap() + (x.as_tensor() * &b).unwrap().sum_all().unwrap()).unwrap();
    let y = (y + x.as_tensor().sum_all().unwrap()).unwrap();
    let grads = y.backward().unwrap();
    let want: Vec<f32> =
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().zip(b.flatten_all().unwrap().to_vec1::<f32>().unwrap()).map(|(p, q)| p + q + 1.0).collect();
    assert_eq!(grad_of(&grads, &x), want);
}

#[test]
fn subtracting_rules_negate_a_first_gradient_and_subtract_later_ones() {
    // d/dx of sum(c - x) is -1 (the first and only gradient, negated); of sum(3x - x) is 2.
    let x = var(&[1.0, 2.0, 3.0, 4.0], (2, 2));
    let c = Tensor::ones((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let grads = (&c - x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(grad_of(&grads, &x), vec![-1.0; 4]);
    let y = ((x.as_tensor() * 3.0).unwrap() - x.as_tensor()).unwrap().sum_all().unwrap();
    assert_eq!(grad_of(&y.backward().unwrap(), &x), vec![2.0; 4]);
}

#[test]
fn a_first_gradient_arriving_as_a_strided_view_is_stored_contiguous() {
    // x is used only through its transpose: its gradient arrives as a transposed view of the
    // matmul's input gradient and must be stored in x's own layout.
    let x = var(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3));
    let w = Tensor::from_slice(&[1.0f32, -1.0, 2.0, 0.5], (2, 2), &Device::Cpu).unwrap();
    let y = x.as_tensor().t().unwrap().matmul(&w).unwrap().sum_all().unwrap();
    // d/dx_ij of sum_k sum_j' x_j'i w_j'k = sum_k w_ik: rows of w summed, the same for every column.
    let grads = y.backward().unwrap();
    assert_eq!(grad_of(&grads, &x), vec![0.0, 0.0, 0.0, 2.5, 2.5, 2.5]);
}

#[test]
fn both_inputs_of_an_add_get_the_gradient_and_stay_independent() {
    // One upstream gradient flows to both inputs of an add; a later contribution to one of them
    // must not show in the other's.
    let p = var(&[1.0, 2.0], (1, 2));
    let q = var(&[3.0, 4.0], (1, 2));
    let y = ((p.as_tensor() + q.as_tensor()).unwrap().sum_all().unwrap() + (p.as_tensor() * 5.0).unwrap().sum_all().unwrap()).unwrap();
    let grads = y.backward().unwrap();
    assert_eq!(grad_of(&grads, &p), vec![6.0, 6.0]);
    assert_eq!(grad_of(&grads, &q), vec![1.0, 1.0]);
}
