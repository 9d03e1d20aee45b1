//! The data-efficient GAN recipe: DiffAugment, spectral normalisation, the EMA generator and
//! the step budget, each checked on its own, and the full recipe resuming bit for bit. 16 px.

use candle_core::{Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use mri_gan::{load_gan, sample, train_gan, DiffAugment, GanConfig, GanLoss, SnWeight};
use mri_preprocess::{Dataset, PhantomConfig};
use mri_train::{Checkpoint, ImageSet, RunOptions};

fn phantom_set(side: u32, per_class: usize, seed: u64) -> ImageSet {
    ImageSet::from_dataset(&Dataset::phantom(&PhantomConfig { image_size: side, per_class, seed, ..Default::default() }).unwrap()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn diff_augment_is_seeded_differentiable_and_keeps_the_background() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::rand(0f32, 1f32, (4, 1, 16, 16), &dev).unwrap().affine(2.0, -1.0).unwrap()).unwrap();
    let aug = DiffAugment::reference();
    let a = aug.apply(x.as_tensor(), 7).unwrap();
    assert_eq!(a.dims(), &[4, 1, 16, 16]);
    assert_eq!(values(&a), values(&aug.apply(x.as_tensor(), 7).unwrap()), "same seed, same augmentation");
    assert_ne!(values(&a), values(&aug.apply(x.as_tensor(), 8).unwrap()), "another seed, another augmentation");
    assert_eq!(values(&DiffAugment::default().apply(x.as_tensor(), 7).unwrap()), values(x.as_tensor()), "off is the identity");
    // Gradients reach every image.
    let grads = a.sum_all().unwrap().backward().unwrap();
    let g = grads.get(&x).expect("a gradient for x");
    for i in 0..4 {
        assert!(values(&g.get(i).unwrap()).iter().any(|v| *v != 0.0), "image {i} gets no gradient");
    }
    // Translation alone moves a bright square and fills in background (−1).
    let mut img = vec![-1f32; 16 * 16];
    for y in 6..10 {
        for x in 6..10 {
            img[y * 16 + x] = 1.0;
        }
    }
    let sq = Tensor::from_vec(img.repeat(8), (8, 1, 16, 16), &dev).unwrap();
    let shift = DiffAugment { translation: 0.125, ..Default::default() }.apply(&sq, 3).unwrap();
    for i in 0..8 {
        let v = values(&shift.get(i).unwrap());
        assert_eq!(v.iter().filter(|p| **p == 1.0).count(), 16, "the square stays whole (2-pixel shifts cannot push it out)");
        assert!(v.iter().all(|p| *p == 1.0 || *p == -1.0), "nothing but square and background");
    }
    let moved = (0..8).filter(|&i| values(&shift.get(i).unwrap()) != img).count();
    assert!(moved >= 6, "only {moved} of 8 images moved");
    // Cutout sets a square of side 8 (clipped at the border) to 0.
    let cut = DiffAugment { cutout: 0.5, ..Default::default() }.apply(&sq, 4).unwrap();
    for i in 0..8 {
        let zeros = values(&cut.get(i).unwrap()).iter().filter(|p| **p == 0.0).count();
        assert!((16..=64).contains(&zeros), "image {i}: {zeros} pixels cut out");
    }
    assert!(DiffAugment { contrast: 1.5, ..Default::default() }.check().is_err());
    // Grouped: one draw per pack of 2 (7 images: packs of 2, 2, 2 and 1). Equal images stay
    // equal within a pack, packs differ; group 1 is `apply`, draw for draw.
    let seven = Tensor::from_vec(img.repeat(7), (7, 1, 16, 16), &dev).unwrap();
    assert_eq!(values(&aug.apply_grouped(&seven, 5, 1).unwrap()), values(&aug.apply(&seven, 5).unwrap()));
    let packed = aug.apply_grouped(&seven, 5, 2).unwrap();
    let image = |i: usize| values(&packed.get(i).unwrap());
    for p in 0..3 {
        assert_eq!(image(2 * p), image(2 * p + 1), "pack {p} augmented alike");
    }
    assert!((0..3).any(|p| image(2 * p) != image(6)) && image(0) != image(2), "packs draw their own augmentation");
}

#[test]
fn spectral_norm_scales_to_unit_largest_singular_value() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
    // Singular values 3, 2, 0.5 in a 3×(2·2) "conv" weight: rows orthogonal with these norms.
    let w = Tensor::from_vec(vec![3f32, 0., 0., 0., 0., 2., 0., 0., 0., 0., 0.5, 0.], (3, 1, 2, 2), &dev).unwrap();
    let sn = SnWeight::new(w.clone(), true, &vb.pp("layer")).unwrap();
    assert!(vm.data().lock().unwrap().contains_key("layer.sn_u"));
    let mut last = Tensor::zeros(1, candle_core::DType::F32, &dev).unwrap();
    for _ in 0..30 {
        last = sn.weight(true).unwrap();
    }
    let v = values(&last);
    assert!((v[0] - 1.0).abs() < 1e-3 && (v[5] - 2.0 / 3.0).abs() < 1e-3, "W/σ = {v:?}");
    // Without normalisation the weight is untouched; without an update u does not move.
    let plain = SnWeight::new(w.clone(), false, &vb.pp("plain")).unwrap();
    assert_eq!(values(&plain.weight(true).unwrap()), values(&w));
    let u0 = values(vm.data().lock().unwrap()["layer.sn_u"].as_tensor());
    sn.weight(false).unwrap();
    assert_eq!(u0, values(vm.data().lock().unwrap()["layer.sn_u"].as_tensor()));
}

#[test]
fn full_recipe_resumes_bit_for_bit_and_samples_from_the_ema_generator() {
    let set = phantom_set(16, 6, 4).of_class(1);
    let dev = Device::Cpu;
    let cfg = GanConfig {
        loss: GanLoss::Hinge,
        diff_augment: DiffAugment::reference(),
        spectral_norm: true,
        ema_decay: 0.9,
        min_steps: 3,
        epochs: 1,
        ..GanConfig::quick(16)
    };
    // 6 images in batches of 8: one step an epoch, so min_steps 3 means three epochs.
    assert_eq!(cfg.epochs_for(set.len()), 3);
    let whole = train_gan(&cfg, &set, &dev, &RunOptions::quiet(1)).unwrap();
    assert_eq!(whole.history.len(), 3);
    let ema = whole.g_ema_varmap.as_ref().expect("an EMA generator");
    let w = |vm: &VarMap| mri_train::var_values(vm).unwrap();
    assert!(w(ema).iter().all(|(k, _)| k.starts_with("generator_ema.")));
    assert_ne!(w(ema).iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(), w(&whole.g_varmap).iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
    assert!(w(&whole.d_varmap).iter().any(|(k, _)| k.ends_with("sn_u")));

    let dir = tempfile::tempdir().unwrap();
    let opts = |stop_after| RunOptions { checkpoint_dir: Some(dir.path().to_path_buf()), name: "gan-yes".into(), stop_after, ..RunOptions::quiet(1) };
    let first = train_gan(&cfg, &set, &dev, &opts(Some(2))).unwrap();
    assert!(first.stopped_early);
    let resumed = train_gan(&cfg, &set, &dev, &opts(None)).unwrap();
    assert_eq!(w(&whole.g_varmap), w(&resumed.g_varmap));
    assert_eq!(w(&whole.d_varmap), w(&resumed.d_varmap), "D and its power-iteration vectors");
    assert_eq!(w(ema), w(resumed.g_ema_varmap.as_ref().unwrap()));
    // The loaded generator is the EMA one: its samples equal the trained EMA generator's.
    let (_, g, _) = load_gan(&Checkpoint::at(dir.path(), "gan-yes"), &dev).unwrap();
    assert_eq!(values(&sample(&g, None, 3, 5, 3, &dev).unwrap()), values(&sample(&whole.generator, None, 3, 5, 3, &dev).unwrap()));
}

#[test]
fn average_pooling_discriminator_has_the_right_shapes_and_trains() {
    let dev = Device::Cpu;
    let cfg = GanConfig { d_avg_pool: true, spectral_norm: true, loss: GanLoss::Hinge, epochs: 2, ..GanConfig::quick(16) };
    let (_, g_vm, d, d_vm) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
    use candle_core::Module;
    assert_eq!(d.forward(&Tensor::zeros((3, 1, 16, 16), candle_core::DType::F32, &dev).unwrap()).unwrap().dims(), &[3, 1]);
    let count = |vm: &VarMap| {
        vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with("sn_u")).map(|(_, v)| v.elem_count()).sum::<usize>()
    };
    assert_eq!((count(&g_vm), count(&d_vm)), cfg.param_counts());
    assert!(d_vm.data().lock().unwrap()["discriminator.conv0.weight"].dims() == [4, 1, 3, 3]);
    let out = train_gan(&cfg, &phantom_set(16, 6, 4).of_class(1), &dev, &RunOptions::quiet(2)).unwrap();
    assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
}

#[test]
fn binomial_blur_spreads_an_impulse_and_its_gradient_is_smooth() {
    use candle_core::Var;
    let dev = Device::Cpu;
    // An impulse (16) in the middle of a 5×5 plane becomes the binomial kernel ×16, [1 2 1]ᵀ[1 2 1],
    // with zeros around it; a second channel of zeros stays zero (channels are blurred apart).
    let mut v = vec![0f32; 2 * 25];
    v[12] = 16.0;
    let x = Tensor::from_vec(v, (1, 2, 5, 5), &dev).unwrap();
    let y: Vec<Vec<f32>> = mri_gan::binomial_blur3(&x).unwrap().get(0).unwrap().get(0).unwrap().to_vec2().unwrap();
    assert_eq!(y[1][1..4], [1.0, 2.0, 1.0]);
    assert_eq!(y[2][1..4], [2.0, 4.0, 2.0]);
    assert_eq!(y[3][1..4], [1.0, 2.0, 1.0]);
    assert_eq!(y[0], [0.0; 5]);
    let zeros: f32 = mri_gan::binomial_blur3(&x).unwrap().get(0).unwrap().get(1).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
    assert_eq!(zeros, 0.0);
    // Its input gradient for a period-2 (checkerboard) upstream gradient is damped: the blur
    // zeroes that frequency in the interior, which is what keeps it out of the generator.
    let xv = Var::from_tensor(&Tensor::zeros((1, 1, 6, 6), candle_core::DType::F32, &dev).unwrap()).unwrap();
    let checker: Vec<f32> = (0..36).map(|i| if (i / 6 + i % 6) % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let checker = Tensor::from_vec(checker, (1, 1, 6, 6), &dev).unwrap();
    let loss = (mri_gan::binomial_blur3(xv.as_tensor()).unwrap() * &checker).unwrap().sum_all().unwrap();
    let g: Vec<Vec<f32>> = loss.backward().unwrap().get(xv.as_tensor()).unwrap().get(0).unwrap().get(0).unwrap().to_vec2().unwrap();
    for row in &g[1..5] {
        for &gij in &row[1..5] {
            assert!(gij.abs() < 1e-6, "{g:?}");
        }
    }
}

#[test]
fn blurred_discriminator_trains_and_keeps_its_parameter_count() {
    let dev = Device::Cpu;
    let cfg = GanConfig { d_blur: mri_gan::DiscriminatorBlur::EveryLayer, spectral_norm: true, loss: GanLoss::Hinge, epochs: 2, ..GanConfig::quick(16) };
    let (_, g_vm, _, d_vm) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
    let count = |vm: &VarMap| {
        vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with("sn_u")).map(|(_, v)| v.elem_count()).sum::<usize>()
    };
    assert_eq!((count(&g_vm), count(&d_vm)), cfg.param_counts());
    let out = train_gan(&cfg, &phantom_set(16, 6, 4).of_class(1), &dev, &RunOptions::quiet(2)).unwrap();
    assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
}

#[test]
fn inner_layer_blur_keeps_the_image_unblurred_for_the_first_conv() {
    use candle_core::Module;
    use mri_gan::DiscriminatorBlur;
    assert!(!DiscriminatorBlur::Off.blurs(0) && !DiscriminatorBlur::Off.blurs(2));
    assert!(DiscriminatorBlur::EveryLayer.blurs(0) && DiscriminatorBlur::EveryLayer.blurs(1));
    assert!(!DiscriminatorBlur::InnerLayers.blurs(0) && DiscriminatorBlur::InnerLayers.blurs(1));
    // Same weights (same seed), three layouts, one checkerboard image: blurring the first conv's
    // input changes the logit, and the inner-layer variant differs from both.
    let dev = Device::Cpu;
    let x = Tensor::from_vec((0..256).map(|i| if (i / 16 + i % 16) % 2 == 0 { 0.5f32 } else { -0.5 }).collect::<Vec<_>>(), (1, 1, 16, 16), &dev).unwrap();
    let logit = |blur| {
        let cfg = GanConfig { d_blur: blur, ..GanConfig::quick(16) };
        let (_, _, d, _) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
        d.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
    };
    let (off, every, inner) = (logit(DiscriminatorBlur::Off), logit(DiscriminatorBlur::EveryLayer), logit(DiscriminatorBlur::InnerLayers));
    assert!(off != every && inner != every && inner != off, "{off} {every} {inner}");
}

#[test]
fn minibatch_std_sees_a_collapsed_batch_and_passes_gradients() {
    let dev = Device::Cpu;
    // Six images of 2×2×2 features with known values: groups of 3 (the largest divisor of 6
    // that is ≤ 4); image i belongs to group i mod 2.
    let data: Vec<f32> = (0..6 * 8).map(|i| ((i * 37) % 11) as f32 * 0.1).collect();
    let x = Var::from_vec(data.clone(), (6, 2, 2, 2), &dev).unwrap();
    let y = mri_gan::minibatch_std(x.as_tensor(), 4).unwrap();
    assert_eq!(y.dims(), &[6, 3, 2, 2]);
    let yv = values(&y);
    for group in 0..2 {
        let members: Vec<usize> = (0..6).filter(|i| i % 2 == group).collect();
        let mut mean_sd = 0.0f64;
        for f in 0..8 {
            let v: Vec<f64> = members.iter().map(|&i| f64::from(data[i * 8 + f])).collect();
            let m = v.iter().sum::<f64>() / 3.0;
            mean_sd += (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 3.0 + 1e-8).sqrt() / 8.0;
        }
        for &i in &members {
            // The input channels pass through; the statistic fills the new channel's 4 pixels.
            assert_eq!(&yv[i * 12..i * 12 + 8], &data[i * 8..i * 8 + 8]);
            for p in 0..4 {
                assert!((f64::from(yv[i * 12 + 8 + p]) - mean_sd).abs() < 1e-5, "group {group}: {} vs {mean_sd}", yv[i * 12 + 8 + p]);
            }
        }
    }
    // A batch of one repeated image (a collapsed generator) gives a statistic of ~0.
    let same = Tensor::from_vec(data[..8].repeat(4), (4, 2, 2, 2), &dev).unwrap();
    let s = values(&mri_gan::minibatch_std(&same, 4).unwrap().narrow(1, 2, 1).unwrap());
    assert!(s.iter().all(|v| v.abs() < 1e-3), "{s:?}");
    // Gradients reach the input through the statistic.
    let grads = mri_gan::minibatch_std(x.as_tensor(), 4).unwrap().narrow(1, 2, 1).unwrap().sum_all().unwrap().backward().unwrap();
    let g = values(grads.get(&x).unwrap());
    assert!(g.iter().any(|v| v.abs() > 1e-6) && g.iter().all(|v| v.is_finite()));
}

#[test]
fn minibatch_std_and_conditional_gans_train_and_count_their_parameters() {
    let dev = Device::Cpu;
    let count = |vm: &VarMap| {
        vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with("sn_u")).map(|(_, v)| v.elem_count()).sum::<usize>()
    };
    let quick = GanConfig::quick(16).param_counts();
    let both = phantom_set(16, 6, 4);
    for (mbstd, classes) in [(4, 0), (0, 2), (4, 2)] {
        let cfg = GanConfig { d_minibatch_std: mbstd, classes, spectral_norm: true, loss: GanLoss::Hinge, epochs: 2, ..GanConfig::quick(16) };
        let (g, g_vm, _, d_vm) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
        assert_eq!((count(&g_vm), count(&d_vm)), cfg.param_counts(), "mbstd {mbstd} classes {classes}");
        assert!(cfg.param_counts().1 > quick.1 && (classes == 0 || cfg.param_counts().0 > quick.0));
        assert_eq!(g.classes(), classes);
        // A conditional GAN trains on both classes at once; a per-class one on one class.
        let set = if classes > 0 { both.clone() } else { both.of_class(1) };
        let out = train_gan(&cfg, &set, &dev, &RunOptions::quiet(2)).unwrap();
        assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
        if classes > 0 {
            let (a, b) = (sample(&out.generator, Some(0), 3, 5, 3, &dev).unwrap(), sample(&out.generator, Some(1), 3, 5, 3, &dev).unwrap());
            assert_ne!(values(&a), values(&b));
            assert!(sample(&out.generator, None, 3, 5, 3, &dev).is_err() && sample(&out.generator, Some(2), 3, 5, 3, &dev).is_err());
        } else {
            assert!(sample(&out.generator, Some(0), 3, 5, 3, &dev).is_err());
        }
    }
    // Labels beyond the classes are refused before training.
    let cfg = GanConfig { classes: 2, ..GanConfig::quick(16) };
    let mut three = both.clone();
    three.labels[0] = 2;
    let e = train_gan(&cfg, &three, &dev, &RunOptions::quiet(1)).err().unwrap().to_string();
    assert!(e.contains("label 2"), "{e}");
}

#[test]
fn mode_seeking_adds_a_positive_term_to_the_generator_loss_only() {
    use mri_gan::{build_gan, gan_step};
    use mri_train::Adam;
    let dev = Device::Cpu;
    let set = phantom_set(16, 6, 4);
    let (real, labels) = set.batch(&[0, 1, 2, 3, 4, 5, 6], None, &dev).unwrap();
    let step = |lambda: f64, classes: usize| {
        let cfg = GanConfig { mode_seeking: lambda, classes, loss: GanLoss::Hinge, ..GanConfig::quick(16) };
        let (g, g_vm, d, d_vm) = build_gan(&cfg, 1, &dev).unwrap();
        let mut adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_")).unwrap();
        let mut adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |_| true).unwrap();
        gan_step(&g, &d, &mut adam_g, &mut adam_d, &real, (classes > 0).then_some(&labels), &cfg, 3, None, &mut Default::default()).unwrap()
    };
    for classes in [0, 2] {
        let (off, on) = (step(0.0, classes), step(1.0, classes));
        assert_eq!(off[0], on[0], "the discriminator's step is unchanged");
        assert!(on[1] > off[1] + 1e-3, "classes {classes}: {} vs {}", on[1], off[1]);
    }
    let e = GanConfig { mode_seeking: -1.0, ..GanConfig::quick(16) }.check().err().unwrap().to_string();
    assert!(e.contains("mode_seeking"), "{e}");
}

/// PacGAN packing: the discriminator takes `d_pack` images as channels and gives one logit a
/// pack (a batch's remainder left out), its parameters are counted, a pack of one repeated
/// image differs from a pack of two images, a packed GAN trains (both losses, odd last batch),
/// and packing more images than a batch is refused.
#[test]
fn packed_discriminator_judges_packs_of_images() {
    let dev = Device::Cpu;
    let count = |vm: &VarMap| {
        vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with("sn_u")).map(|(_, v)| v.elem_count()).sum::<usize>()
    };
    let set = phantom_set(16, 7, 4).of_class(1);
    for loss in [GanLoss::Hinge, GanLoss::Bce] {
        let cfg = GanConfig { d_pack: 2, spectral_norm: true, loss, epochs: 2, batch_size: 5, ..GanConfig::quick(16) };
        let (_, g_vm, d, d_vm) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
        assert_eq!((count(&g_vm), count(&d_vm)), cfg.param_counts());
        assert_eq!(d.pack(), 2);
        let (x, _) = set.batch(&[0, 1, 2, 3, 4, 5, 6], None, &dev).unwrap();
        let x = x.affine(2.0, -1.0).unwrap();
        assert_eq!(d.forward(&x).unwrap().dims(), &[3, 1], "7 images: 3 packs, one left out");
        assert!(d.forward(&x.narrow(0, 0, 1).unwrap()).is_err());
        // Pack (a, a) against pack (a, b): the discriminator sees the second image.
        let a = x.narrow(0, 0, 1).unwrap();
        let same = Tensor::cat(&[&a, &a], 0).unwrap();
        let two = x.narrow(0, 0, 2).unwrap();
        assert_ne!(values(&d.forward(&same).unwrap()), values(&d.forward(&two).unwrap()));
        // 7 images in batches of 5: the last batch of 2 still makes one pack; in batches of 6
        // the last batch of 1 makes none and is skipped.
        for batch_size in [5, 6] {
            let out = train_gan(&GanConfig { batch_size, ..cfg.clone() }, &set, &dev, &RunOptions::quiet(3)).unwrap();
            assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()), "{loss:?}, batch {batch_size}");
        }
    }
    let one = phantom_set(16, 1, 4).of_class(1);
    let e = train_gan(&GanConfig { d_pack: 2, ..GanConfig::quick(16) }, &one, &dev, &RunOptions::quiet(3)).err().unwrap().to_string();
    assert!(e.contains("pack"), "{e}");
    assert!(GanConfig { d_pack: 2, ..GanConfig::quick(16) }.param_counts().1 > GanConfig::quick(16).param_counts().1);
    let e = GanConfig { d_pack: 2, classes: 2, mode_seeking: 1.0, ..GanConfig::quick(16) }.check().err().unwrap().to_string();
    assert!(e.contains("mode_seeking"), "{e}");
    let e = GanConfig { d_pack: 9, batch_size: 8, ..GanConfig::quick(16) }.check().err().unwrap().to_string();
    assert!(e.contains("batch size"), "{e}");
}

/// A packing class-conditional GAN: a batch is regrouped so that every pack holds one class
/// (each class's remainder left out), the projection term reads each pack's label, and the GAN
/// trains on both classes; a set in which no class fills a pack is refused.
#[test]
fn packed_conditional_discriminator_keeps_one_class_a_pack() {
    assert_eq!(mri_gan::pack_order(&[1, 0, 1, 1, 0, 0, 0], 2), vec![1, 4, 5, 6, 0, 2]);
    assert_eq!(mri_gan::pack_order(&[1, 0, 1], 2), vec![0, 2], "class 0's single image left out");
    assert!(mri_gan::pack_order(&[1, 0], 2).is_empty());
    assert_eq!(mri_gan::pack_order(&[1, 0], 1), vec![0, 1]);
    let dev = Device::Cpu;
    let cfg = GanConfig { d_pack: 2, classes: 2, spectral_norm: true, loss: GanLoss::Hinge, epochs: 2, batch_size: 5, ..GanConfig::quick(16) };
    let (_, _, d, d_vm) = mri_gan::build_gan(&cfg, 0, &dev).unwrap();
    // A non-zero class embedding, so that the label changes the logit.
    let proj = d_vm.data().lock().unwrap().get("discriminator.proj.weight").unwrap().clone();
    proj.set(&Tensor::randn(0f32, 1.0, proj.shape(), &dev).unwrap()).unwrap();
    let set = phantom_set(16, 4, 4);
    let (x, _) = set.batch(&[0, 1, 2, 3], None, &dev).unwrap();
    let x = x.affine(2.0, -1.0).unwrap();
    let y = |v: Vec<u32>| Tensor::new(v, &dev).unwrap();
    let logits = |labels: Vec<u32>| values(&d.forward_class(&x, Some(&y(labels)), false).unwrap());
    assert_eq!(logits(vec![0, 0, 1, 1]).len(), 2, "two packs, one logit each");
    assert_eq!(logits(vec![0, 1, 1, 0]), logits(vec![0, 0, 1, 1]), "a pack's label is its first image's");
    assert_ne!(logits(vec![1, 0, 1, 1]), logits(vec![0, 0, 1, 1]), "the projection term reads the label");
    let out = train_gan(&cfg, &set, &dev, &RunOptions::quiet(3)).unwrap();
    assert_eq!(out.history.len(), 2);
    assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
    let mut lonely = phantom_set(16, 1, 4);
    lonely.labels = vec![0, 1];
    let e = train_gan(&cfg, &lonely, &dev, &RunOptions::quiet(3)).err().unwrap().to_string();
    assert!(e.contains("pack"), "{e}");
}

/// The spread diagnostic: 0 for equal images, the sample standard deviation per pixel
/// otherwise; every epoch of a training records the sampling generator's spread.
#[test]
fn pixel_spread_sees_equal_images_and_is_recorded_every_epoch() {
    let dev = Device::Cpu;
    let zeros = Tensor::zeros((3, 1, 4, 4), candle_core::DType::F32, &dev).unwrap();
    assert_eq!(mri_gan::pixel_spread(&zeros).unwrap(), 0.0);
    assert_eq!(mri_gan::pixel_spread(&zeros.narrow(0, 0, 1).unwrap()).unwrap(), 0.0, "one image has no spread");
    let two = Tensor::cat(&[zeros.narrow(0, 0, 1).unwrap(), (zeros.narrow(0, 0, 1).unwrap() + 1.0).unwrap()], 0).unwrap();
    assert!((mri_gan::pixel_spread(&two).unwrap() - 0.5f64.sqrt()).abs() < 1e-6);
    let set = phantom_set(16, 4, 4);
    for classes in [0, 2] {
        let train = if classes == 0 { set.of_class(1) } else { set.clone() };
        let out = train_gan(&GanConfig { classes, epochs: 2, ..GanConfig::quick(16) }, &train, &dev, &RunOptions::quiet(3)).unwrap();
        assert!(out.history.iter().all(|r| r.spread > 0.0 && r.spread < 1.0), "classes {classes}: {:?}", out.history);
    }
}

/// AC-GAN's auxiliary classifier: a head of `classes` logits on the discriminator's features,
/// counted among its parameters; it changes both networks' losses; it needs a conditional GAN.
#[test]
fn auxiliary_classifier_gives_class_logits_and_enters_both_losses() {
    let dev = Device::Cpu;
    let count = |vm: &VarMap| {
        vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running_") && !k.ends_with("sn_u")).map(|(_, v)| v.elem_count()).sum::<usize>()
    };
    let set = phantom_set(16, 4, 4);
    let (x, y) = set.batch(&[0, 1, 2, 3, 4, 5, 6, 7], None, &dev).unwrap();
    let base = GanConfig { classes: 2, d_pack: 2, spectral_norm: true, loss: GanLoss::Hinge, ..GanConfig::quick(16) };
    let ac = GanConfig { aux_classifier: 1.0, ..base.clone() };
    let (g, g_vm, d, d_vm) = mri_gan::build_gan(&ac, 0, &dev).unwrap();
    assert_eq!((count(&g_vm), count(&d_vm)), ac.param_counts());
    assert!(ac.param_counts().1 > base.param_counts().1);
    let order = mri_gan::pack_order(&y.to_vec1::<u32>().unwrap(), 2);
    let order = Tensor::new(order.iter().map(|&i| i as u32).collect::<Vec<_>>(), &dev).unwrap();
    let (xs, ys) = (x.index_select(&order, 0).unwrap().affine(2.0, -1.0).unwrap(), y.index_select(&order, 0).unwrap());
    let (logit, classes) = d.forward_with_classes(&xs, Some(&ys), false).unwrap();
    assert_eq!(logit.dims(), &[xs.dim(0).unwrap() / 2, 1]);
    assert_eq!(classes.unwrap().dims(), &[xs.dim(0).unwrap() / 2, 2], "class logits a pack");
    let (_, none) = mri_gan::build_gan(&base, 0, &dev).map(|(_, _, d, _)| d.forward_with_classes(&xs, Some(&ys), false).unwrap()).unwrap();
    assert!(none.is_none());
    // Same weights, same batch: the first step's losses differ by the classifier's terms.
    let losses = |cfg: &GanConfig| {
        let (g, g_vm, d, d_vm) = mri_gan::build_gan(cfg, 0, &dev).unwrap();
        let mut adam_g = mri_train::Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_")).unwrap();
        let mut adam_d = mri_train::Adam::from_varmap(&d_vm, cfg.adam_d, |n| !n.ends_with("sn_u")).unwrap();
        mri_gan::gan_step(&g, &d, &mut adam_g, &mut adam_d, &x, Some(&y), cfg, 0, None, &mut Default::default()).unwrap()
    };
    let (with, without) = (losses(&ac), losses(&base));
    assert!(with[0] > without[0] && with[1] > without[1], "CE ≥ 0 adds to both losses: {with:?} vs {without:?}");
    drop((g, d));
    let out = train_gan(&GanConfig { epochs: 2, batch_size: 4, ..ac.clone() }, &set, &dev, &RunOptions::quiet(3)).unwrap();
    assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
    let e = GanConfig { aux_classifier: 1.0, ..GanConfig::quick(16) }.check().err().unwrap().to_string();
    assert!(e.contains("aux_classifier"), "{e}");
    let e = GanConfig { aux_classifier: -1.0, ..base }.check().err().unwrap().to_string();
    assert!(e.contains("aux_classifier"), "{e}");
}

/// `reuse_fake`: the discriminator step is unchanged, the generator step scores the D step's
/// own fakes — the generator ran once, so its batch-norm statistics moved by exactly one
/// training forward of the D step's noise —, a GAN trains with it, and it is refused beside
/// mode seeking.
#[test]
fn reusing_the_discriminator_steps_fakes_runs_the_generator_once() {
    use mri_gan::{build_gan, gan_step};
    use mri_train::Adam;
    let dev = Device::Cpu;
    let set = phantom_set(16, 6, 4);
    let (real, _) = set.batch(&[0, 1, 2, 3, 4, 5, 6, 7], None, &dev).unwrap();
    let running = |vm: &VarMap| {
        let data = vm.data().lock().unwrap();
        let mut v: Vec<(String, Vec<f32>)> = data.iter().filter(|(k, _)| k.contains("running_")).map(|(k, t)| (k.clone(), values(t.as_tensor()))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let step = |reuse_fake: bool| {
        let cfg = GanConfig { reuse_fake, loss: GanLoss::Hinge, ..GanConfig::quick(16) };
        let (g, g_vm, d, d_vm) = build_gan(&cfg, 1, &dev).unwrap();
        let mut adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_")).unwrap();
        let mut adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |_| true).unwrap();
        let losses = gan_step(&g, &d, &mut adam_g, &mut adam_d, &real, None, &cfg, 3, None, &mut Default::default()).unwrap();
        (losses, running(&g_vm))
    };
    let ((fresh, stats_fresh), (reused, stats_reused)) = (step(false), step(true));
    assert_eq!(fresh[0], reused[0], "the discriminator's step is unchanged");
    assert_ne!(fresh[1], reused[1], "the generator step scores other fakes");
    // One training forward of the D step's noise moves the statistics as the reusing step did.
    let cfg = GanConfig { loss: GanLoss::Hinge, ..GanConfig::quick(16) };
    let (g, g_vm, _, _) = build_gan(&cfg, 1, &dev).unwrap();
    let before = running(&g_vm);
    let z_d = mri_train::seeded_normal(3, "gan/d/0", (8, cfg.latent), &dev).unwrap();
    g.forward_class(&z_d, None, true).unwrap();
    let once = running(&g_vm);
    assert_ne!(once, before, "the generator has batch-norm statistics to compare");
    assert_eq!(stats_reused, once, "reuse_fake: one generator forward a step");
    assert_ne!(stats_fresh, once, "a fresh G step runs the generator a second time");
    let out = train_gan(&GanConfig { epochs: 2, reuse_fake: true, ..cfg.clone() }, &set, &dev, &RunOptions::quiet(3)).unwrap();
    assert!(out.history.iter().all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
    let e = GanConfig { reuse_fake: true, mode_seeking: 1.0, ..cfg }.check().err().unwrap().to_string();
    assert!(e.contains("reuse_fake") && e.contains("mode_seeking"), "{e}");
}

/// LeCam (Tseng et al. 2021): the anchors' moving averages, the penalty's value on hand-worked
/// logits, the D step's loss grows by it only when the weight is on, and a run with it resumes
/// bit for bit (the anchors are saved with the checkpoint).
#[test]
fn lecam_penalty_anchors_and_resume() {
    use mri_gan::{build_gan, gan_step, LeCamAnchors, LECAM_DECAY};
    use mri_train::Adam;
    let dev = Device::Cpu;
    let mut a = LeCamAnchors::default();
    a.update(2.0, -1.0);
    assert_eq!((a.real, a.fake, a.steps), (2.0, -1.0, 1), "the first step sets the anchors");
    a.update(0.0, 1.0);
    assert!((a.real - 2.0 * LECAM_DECAY).abs() < 1e-12 && (a.fake - (-LECAM_DECAY + (1.0 - LECAM_DECAY))).abs() < 1e-12);
    // α_real 0.5, α_fake −0.5: real logits 1 and −1 give relu(1.5)² and 0; fake logits 0 and 1
    // give relu(0.5)² and 0: (2.25 + 0) / 2 + (0.25 + 0) / 2 = 1.25.
    let anchors = LeCamAnchors { real: 0.5, fake: -0.5, steps: 5 };
    let p = anchors.penalty(&Tensor::new(&[[1f32], [-1.0]], &dev).unwrap(), &Tensor::new(&[[0f32], [1.0]], &dev).unwrap()).unwrap();
    assert!((p.to_scalar::<f32>().unwrap() - 1.25).abs() < 1e-6);

    let set = phantom_set(16, 6, 4);
    let (real, _) = set.batch(&[0, 1, 2, 3, 4, 5, 6, 7], None, &dev).unwrap();
    let step = |lambda: f64| {
        let cfg = GanConfig { lecam: lambda, loss: GanLoss::Hinge, ..GanConfig::quick(16) };
        let (g, g_vm, d, d_vm) = build_gan(&cfg, 1, &dev).unwrap();
        let mut adam_g = Adam::from_varmap(&g_vm, cfg.adam_g, |n| !n.contains("running_")).unwrap();
        let mut adam_d = Adam::from_varmap(&d_vm, cfg.adam_d, |_| true).unwrap();
        let mut anchors = LeCamAnchors::default();
        let r = gan_step(&g, &d, &mut adam_g, &mut adam_d, &real, None, &cfg, 3, None, &mut anchors).unwrap();
        assert_eq!(anchors.steps, 1, "the anchors follow D's logits whether or not the penalty is on");
        r
    };
    let (off, on) = (step(0.0), step(10.0));
    assert!(on[0] > off[0], "λ > 0 adds the penalty to D's loss: {} vs {}", on[0], off[0]);
    assert_eq!((off[2], off[3]), (on[2], on[3]), "the logits the step starts from are the same");
    let e = GanConfig { lecam: f64::NAN, ..GanConfig::quick(16) }.check().err().unwrap().to_string();
    assert!(e.contains("lecam"), "{e}");

    let set = set.of_class(1);
    let cfg = GanConfig { lecam: 1.0, loss: GanLoss::Hinge, spectral_norm: true, min_steps: 3, epochs: 1, ..GanConfig::quick(16) };
    let whole = train_gan(&cfg, &set, &dev, &RunOptions::quiet(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = |stop_after| RunOptions { checkpoint_dir: Some(dir.path().to_path_buf()), name: "gan-yes".into(), stop_after, ..RunOptions::quiet(1) };
    assert!(train_gan(&cfg, &set, &dev, &opts(Some(2))).unwrap().stopped_early);
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("gan-yes-last.json")).unwrap()).unwrap();
    assert_eq!(side["extra"]["task"]["steps"], 2, "the anchors are saved: {}", side["extra"]);
    let resumed = train_gan(&cfg, &set, &dev, &opts(None)).unwrap();
    let w = |vm: &VarMap| mri_train::var_values(vm).unwrap();
    assert_eq!(w(&whole.d_varmap), w(&resumed.d_varmap));
    assert_eq!(w(&whole.g_varmap), w(&resumed.g_varmap));
}
