//! Per-class generators end to end on 16 px phantoms: train, write PNGs, reload, same samples.

use candle_core::Device;
use mri_synth::data::{DataSpec, PreparedData};
use mri_synth::gan::DiscriminatorBlur;
use mri_synth::generators::{load_generator, train_generators, write_synthetic, GanDLayout, GeneratorKind, GeneratorSpec};
use mri_synth::preprocess::SplitPart;

/// 12 phantoms a class at 16 px, split.
fn tiny_phantoms() -> PreparedData {
    let mut spec = DataSpec::phantoms(16, 3);
    spec.phantoms_per_class = 12;
    spec.verbose = false;
    PreparedData::load(&spec).unwrap()
}

/// The quick preset's generator spec at 16 px writing into `dir` (one epoch, seed 2, no grids);
/// each test changes what it is about with struct update syntax.
fn quick_spec(data: &PreparedData, kind: GeneratorKind, dir: &std::path::Path) -> GeneratorSpec {
    GeneratorSpec {
        kind,
        preset: mri_synth::train::Preset::Quick,
        image_size: 16,
        epochs: Some(1),
        steps: None,
        gan_d: GanDLayout::default(),
        overrides: Vec::new(),
        seed: 2,
        out: dir.to_path_buf(),
        figure_every: 0,
        quiet: true,
        fingerprint: Some(data.fingerprint(Some(mri_synth::train::Preset::Quick))),
    }
}

#[test]
fn train_write_and_reload_both_generators() {
    let data = tiny_phantoms();
    let (tr, va) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val));
    let dev = Device::Cpu;
    for kind in [GeneratorKind::Vae, GeneratorKind::Gan] {
        let dir = tempfile::tempdir().unwrap();
        let gspec = GeneratorSpec {
            // The GAN's discriminator widths overridden (the quick preset's are 4, 8), and its
            // inputs blurred before each stride.
            gan_d: GanDLayout { avg_pool: false, blur: Some(DiscriminatorBlur::InnerLayers), channels: Some(vec![6, 8]) },
            // A config override, as `--vae-set` / `--gan-set` give (the quick latent is 8).
            overrides: vec!["latent=6".parse().unwrap()],
            figure_every: 1,
            ..quick_spec(&data, kind, dir.path())
        };
        let trained = train_generators(&gspec, &tr, &va, &dev).unwrap();
        assert_eq!(trained.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), ["yes", "no"]);
        let (class, gen, _) = &trained[0];
        let set = write_synthetic(gen, class, 1, 5, 7, &dir.path().join("synthetic"), &dev).unwrap();
        // Finding 3: zero images used to train first and then fail in `cat`.
        let e = write_synthetic(gen, class, 1, 0, 7, &dir.path().join("synthetic"), &dev).err().unwrap();
        assert!(e.to_string().contains("at least 1"), "{e}");
        assert_eq!((set.len(), set.labels[0]), (5, 1));
        let pngs = std::fs::read_dir(dir.path().join("synthetic/yes")).unwrap().count();
        assert_eq!(pngs, 5);
        assert!(dir.path().join("synthetic/yes-grid.png").exists());
        assert!(std::fs::read_dir(dir.path().join("figures")).unwrap().count() >= 2, "{kind:?}: no progress grids");
        let name = format!("checkpoints/{}-yes.json", kind.name());
        let reloaded = load_generator(&dir.path().join(&name), &dev).unwrap();
        assert_eq!((gen.latent(), reloaded.latent()), (6, 6), "{kind:?}: the override reaches the model and its checkpoint");
        let a: Vec<f32> = gen.sample(3, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = reloaded.sample(3, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b, "{kind:?}");
        if kind == GeneratorKind::Gan {
            let side: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(&name)).unwrap()).unwrap();
            assert_eq!(side["config"]["d_channels"], serde_json::json!([6, 8]), "{side}");
            assert_eq!(side["config"]["d_blur"], serde_json::json!("inner-layers"), "{side}");
        }
        if kind == GeneratorKind::Vae {
            // The quick VAE samples from its fitted code Gaussian, saved beside the checkpoint;
            // without that file the generator cannot be loaded, and the error names it.
            let latent = dir.path().join("checkpoints/vae-yes.latent.json");
            std::fs::remove_file(&latent).unwrap();
            let e = load_generator(&dir.path().join(&name), &dev).err().unwrap().to_string();
            assert!(e.contains("vae-yes.latent.json") && e.contains("code sampler"), "{e}");
        }
        // A second call finds complete checkpoints and trains nothing.
        let again = train_generators(&gspec, &tr, &va, &dev).unwrap();
        let c: Vec<f32> = again[0].1.sample(3, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, c);
    }
}

/// The two-stage sampler end to end: fitted after training, saved beside the checkpoint,
/// reloaded with the same samples; a trained VAE re-sampled with another sampler (a
/// sampling-only setting) reuses its weights instead of being refused or retrained.
#[test]
fn two_stage_vae_generator_reloads_and_resamples() {
    let data = tiny_phantoms();
    let (tr, va) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val));
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let gspec = |overrides: &[&str]| GeneratorSpec {
        overrides: overrides.iter().map(|o| o.parse().unwrap()).collect(),
        ..quick_spec(&data, GeneratorKind::Vae, dir.path())
    };
    let two = gspec(&[r#"sampler="two-stage""#, "second_stage.steps=50", "second_stage.hidden=16", "second_stage.latent=4"]);
    let trained = train_generators(&two, &tr, &va, &dev).unwrap();
    let latent: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("checkpoints/vae-yes.latent.json")).unwrap()).unwrap();
    assert_eq!(latent["config"]["steps"], 50, "{latent}");
    let reloaded = load_generator(&dir.path().join("checkpoints/vae-yes.json"), &dev).unwrap();
    let a: Vec<f32> = trained[0].1.sample(3, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = reloaded.sample(3, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    // The same weights sampled from the fitted Gaussian instead: the checkpoint is reused (no
    // retraining: the weights file is untouched) and the samples differ.
    let weights = |d: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(d.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        v
    };
    let before = weights(dir.path());
    let gauss = train_generators(&gspec(&[r#"sampler="fitted-gaussian""#]), &tr, &va, &dev).unwrap();
    assert_eq!(before, weights(dir.path()));
    let c: Vec<f32> = gauss[0].1.sample(3, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_ne!(a, c);
    assert!(matches!(
        load_generator(&dir.path().join("checkpoints/vae-yes.json"), &dev).unwrap(),
        mri_synth::generators::ClassGenerator::Vae(_, Some(mri_synth::vae::CodeSampler::Gaussian(_)))
    ));
}

#[test]
fn a_class_conditional_gan_is_one_model_that_draws_each_class() {
    use mri_synth::generators::{ClassGenerator, CONDITIONAL_GAN_NAME};
    let data = tiny_phantoms();
    let (tr, va) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val));
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let gspec = GeneratorSpec {
        epochs: Some(2),
        overrides: vec!["classes=2".parse().unwrap(), "d_minibatch_std=4".parse().unwrap()],
        seed: 3,
        figure_every: 1,
        ..quick_spec(&data, GeneratorKind::Gan, dir.path())
    };
    let trained = train_generators(&gspec, &tr, &va, &dev).unwrap();
    // One checkpoint for both classes; no per-class ones.
    let ckpt = dir.path().join(format!("checkpoints/{CONDITIONAL_GAN_NAME}.json"));
    assert!(ckpt.exists() && !dir.path().join("checkpoints/gan-yes.json").exists());
    let draw = |g: &ClassGenerator| -> Vec<f32> { g.sample(4, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap() };
    let (yes, no) = (draw(&trained[0].1), draw(&trained[1].1));
    assert_ne!(yes, no, "same noise, different class: different images");
    assert!(yes.iter().chain(&no).all(|v| (0.0..=1.0).contains(v)));
    // The training's time is shared between the classes' reports, the history is the model's.
    assert_eq!(trained[0].2.seconds, trained[1].2.seconds);
    assert_eq!(trained[0].2.history.as_array().unwrap().len(), 2);
    // Reloaded, it needs a class; with one, it draws what training returned.
    let reloaded = load_generator(&ckpt, &dev).unwrap();
    let e = reloaded.sample(2, 1, &dev).err().unwrap().to_string();
    assert!(e.contains("one class at a time"), "{e}");
    assert_eq!(draw(&reloaded.of_class(1)), yes);
    // A second call finds the checkpoint complete and trains nothing.
    let again = train_generators(&gspec, &tr, &va, &dev).unwrap();
    assert_eq!(draw(&again[1].1), no);
    // Labels outside the classes are refused with the reason.
    let mut one = gspec.clone();
    one.overrides = vec!["classes=1".parse().unwrap()];
    let e = train_generators(&one, &tr, &va, &dev).err().unwrap().to_string();
    assert!(e.contains("classes must be 0"), "{e}");
}

/// A VAE that is one model for both classes, shared or class-conditional: one checkpoint, one
/// code sampler a class beside it, each class drawing from its own codes (the conditional one
/// also told the class); reloaded per class with the same samples.
#[test]
fn a_vae_for_both_classes_is_one_model_with_a_code_sampler_per_class() {
    use mri_synth::generators::{load_class_generator, ClassGenerator, CONDITIONAL_VAE_NAME, SHARED_VAE_NAME};
    let data = tiny_phantoms();
    let (tr, va) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val));
    let dev = Device::Cpu;
    for (models, name) in [("shared", SHARED_VAE_NAME), ("conditional", CONDITIONAL_VAE_NAME)] {
        let dir = tempfile::tempdir().unwrap();
        let gspec = GeneratorSpec {
            epochs: Some(2),
            overrides: vec![format!("class_models=\"{models}\"").parse().unwrap()],
            seed: 4,
            figure_every: 1,
            ..quick_spec(&data, GeneratorKind::Vae, dir.path())
        };
        let trained = train_generators(&gspec, &tr, &va, &dev).unwrap();
        let ckpt = dir.path().join(format!("checkpoints/{name}.json"));
        assert!(ckpt.exists() && !dir.path().join("checkpoints/vae-yes.json").exists(), "{models}");
        for class in ["yes", "no"] {
            assert!(dir.path().join(format!("checkpoints/{name}-{class}.latent.json")).exists(), "{models} {class}");
        }
        assert!(std::fs::read_dir(dir.path().join("figures")).unwrap().count() >= 2, "{models}: no progress grids");
        let draw = |g: &ClassGenerator| -> Vec<f32> { g.sample(4, 1, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap() };
        let (yes, no) = (draw(&trained[0].1), draw(&trained[1].1));
        assert_ne!(yes, no, "{models}: same noise, each class's own codes: different images");
        assert!(yes.iter().chain(&no).all(|v| (0.0..=1.0).contains(v)));
        // Both classes were trained once, on every training slice: one history, shared time.
        assert_eq!(trained[0].2.seconds, trained[1].2.seconds);
        assert_eq!(trained[0].2.history, trained[1].2.history);
        assert_eq!((trained[0].2.train_images, trained[1].2.train_images), (tr.of_class(1).len(), tr.of_class(0).len()));
        // Reloading needs the class (its code sampler), and then draws what training returned.
        let e = load_generator(&ckpt, &dev).err().unwrap().to_string();
        assert!(e.contains("load_class_generator"), "{e}");
        assert_eq!(draw(&load_class_generator(&ckpt, "no", &dev).unwrap()), no, "{models}");
        assert!(load_class_generator(&ckpt, "maybe", &dev).is_err());
        // A second call finds the checkpoint complete and trains nothing.
        let again = train_generators(&gspec, &tr, &va, &dev).unwrap();
        assert_eq!(draw(&again[0].1), yes, "{models}");
    }
}

/// Progress grids: every `figure_every` epochs, spaced out on long trainings to at most
/// MAX_PROGRESS_GRIDS, none when asked for none.
#[test]
fn long_trainings_space_their_progress_grids_out() {
    use mri_synth::generators::{progress_interval, MAX_PROGRESS_GRIDS};
    assert_eq!(progress_interval(5, 20), 5);
    assert_eq!(progress_interval(0, 600), 0);
    for epochs in [1, 24, 125, 126, 600, 1001] {
        let every = progress_interval(5, epochs);
        assert!(every >= 5 && epochs / every <= MAX_PROGRESS_GRIDS, "{epochs} epochs: every {every}");
    }
}

/// The filtered writer keeps accepted draws in draw order: with every draw accepted it writes
/// what `write_synthetic` writes; with every other draw accepted, the first half of its set is
/// the unfiltered set's even draws and it needed two rounds; a filter that accepts nothing, or
/// answers with the wrong number of flags, is an error that says so.
#[test]
fn filtered_synthetic_sets_keep_accepted_draws_in_order() {
    use mri_synth::generators::write_synthetic_filtered;
    use mri_synth::train::ImageSet;
    let data = tiny_phantoms();
    let (tr, va) = (data.image_set(SplitPart::Train), data.image_set(SplitPart::Val));
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let trained = train_generators(&quick_spec(&data, GeneratorKind::Gan, dir.path()), &tr, &va, &dev).unwrap();
    let (class, gen, _) = &trained[0];
    let out = dir.path().join("synthetic");
    let plain = write_synthetic(gen, class, 1, 6, 9, &out, &dev).unwrap();
    let all = |b: &ImageSet| -> Result<Vec<bool>, mri_synth::SynthError> { Ok(vec![true; b.len()]) };
    let (same, drawn) = write_synthetic_filtered(gen, class, 1, 6, 9, &out, &dev, &all).unwrap();
    assert_eq!((same.pixels == plain.pixels, drawn), (true, 6));
    let even = |b: &ImageSet| -> Result<Vec<bool>, mri_synth::SynthError> { Ok((0..b.len()).map(|i| i % 2 == 0).collect()) };
    let (half, drawn) = write_synthetic_filtered(gen, class, 1, 6, 9, &out, &dev, &even).unwrap();
    assert_eq!((half.len(), drawn, half.labels.iter().all(|&l| l == 1)), (6, 12, true));
    for (k, i) in [0, 2, 4].into_iter().enumerate() {
        assert_eq!(half.image(k), plain.image(i), "kept draw {k} is not draw {i}");
    }
    assert_ne!(half.image(3), plain.image(0), "a later round repeated the first round's draws");
    let none = |b: &ImageSet| -> Result<Vec<bool>, mri_synth::SynthError> { Ok(vec![false; b.len()]) };
    let e = write_synthetic_filtered(gen, class, 1, 6, 9, &out, &dev, &none).unwrap_err().to_string();
    assert!(e.contains("kept 0 of 120 draws of class yes"), "{e}");
    let short = |_: &ImageSet| -> Result<Vec<bool>, mri_synth::SynthError> { Ok(vec![true]) };
    let e = write_synthetic_filtered(gen, class, 1, 6, 9, &out, &dev, &short).unwrap_err().to_string();
    assert!(e.contains("1 flags for 6 images"), "{e}");
}
