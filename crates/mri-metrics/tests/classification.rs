//! Classification metrics against hand-computed cases. Where a reference value is quoted as
//! scikit-learn's, it is what `sklearn.metrics` (1.5) returns for the same inputs; each was
//! also worked out by hand in the comment beside it.

use mri_metrics::*;

const EPS: f64 = 1e-12;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < EPS, "{a} != {b}");
}

#[test]
fn confusion_and_ratios_by_hand() {
    // truth:     T T T T F F F F F F
    // predicted: T T T F T T F F F F  → tp 3, fn 1, fp 2, tn 4
    let truth = [true, true, true, true, false, false, false, false, false, false];
    let pred = [true, true, true, false, true, true, false, false, false, false];
    let c = Confusion::from_predictions(&truth, &pred).unwrap();
    assert_eq!((c.tp, c.fp, c.tn, c.fn_), (3, 2, 4, 1));
    close(c.accuracy(), 0.7); // 7/10
    close(c.precision(), 0.6); // 3/5
    close(c.recall(), 0.75); // 3/4
    close(c.specificity(), 4.0 / 6.0);
    close(c.f1(), 2.0 * 0.6 * 0.75 / (0.6 + 0.75)); // harmonic mean = 6/9
    close(c.balanced_accuracy(), (0.75 + 4.0 / 6.0) / 2.0);
    close(c.youden(), 0.75 + 4.0 / 6.0 - 1.0);
    // sklearn precision_recall_fscore_support(average="weighted"): weights 4/10 and 6/10.
    // healthy as positive: tp 4, fp 1, fn 2 → precision 0.8, recall 4/6.
    close(c.weighted(Metric::Precision, 0.4).unwrap(), 0.4 * 0.6 + 0.6 * 0.8);
    close(c.weighted(Metric::Recall, 0.4).unwrap(), 0.4 * 0.75 + 0.6 * (4.0 / 6.0));
    let s = c.summary();
    close(s.f1, c.f1());
    assert_eq!(s.fn_, 1);
}

#[test]
fn undefined_ratios_are_zero_not_nan() {
    // No positives at all, nothing predicted positive: sklearn with zero_division=0 gives 0.
    let c = Confusion::from_predictions(&[false, false], &[false, false]).unwrap();
    assert_eq!(c.precision(), 0.0);
    assert_eq!(c.recall(), 0.0);
    assert_eq!(c.f1(), 0.0);
    assert_eq!(c.specificity(), 1.0);
    assert_eq!(c.accuracy(), 1.0);
    let empty = Confusion::default();
    for m in [Metric::Accuracy, Metric::Precision, Metric::Recall, Metric::F1, Metric::Specificity, Metric::BalancedAccuracy] {
        assert!(!empty.metric(m).is_nan());
        assert_eq!(empty.metric(m), 0.0);
    }
}

#[test]
fn errors_are_reported() {
    assert!(matches!(Confusion::from_predictions(&[true], &[true, false]), Err(MetricsError::LengthMismatch { expected: 1, got: 2, .. })));
    let e = auroc(&[0.1, f64::NAN], &[true, false]).unwrap_err();
    assert_eq!(e.to_string(), "score #1 is NaN; scores must be finite");
    assert!(matches!(Confusion::default().weighted(Metric::F1, 1.5), Err(MetricsError::InvalidAlpha(_))));
    assert_eq!(choose_threshold(&[], &[], ThresholdCriterion::F1).unwrap_err(), MetricsError::Empty);
    assert!("f2".parse::<ThresholdCriterion>().is_err());
    assert_eq!("balanced-accuracy".parse::<ThresholdCriterion>().unwrap(), ThresholdCriterion::BalancedAccuracy);
}

#[test]
fn auroc_matches_sklearn_with_ties() {
    // sklearn.metrics.roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75
    close(auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(), 0.75);
    // Ties: roc_auc_score([0,1,0,1], [0.5,0.5,0.2,0.9]) = 0.875
    // (pairs: (0.5+,0.5-) tie ½, (0.5+,0.2-) 1, (0.9+,·) 1,1 → 3.5/4)
    close(auroc(&[0.5, 0.5, 0.2, 0.9], &[false, true, false, true]).unwrap(), 0.875);
    // All scores equal → 0.5.
    close(auroc(&[0.3; 6], &[true, false, true, false, true, false]).unwrap(), 0.5);
    // Perfectly inverted → 0.
    close(auroc(&[0.9, 0.8, 0.1], &[false, false, true]).unwrap(), 0.0);
    // One class only: undefined, documented as 0.5.
    let roc = RocCurve::new(&[0.2, 0.3], &[true, true]).unwrap();
    assert!(!roc.is_defined());
    assert_eq!(roc.auroc(), 0.5);
}

#[test]
fn roc_points_like_sklearn() {
    // sklearn roc_curve([0,0,1,1],[0.1,0.4,0.35,0.8], drop_intermediate=False):
    // fpr [0, 0, 0.5, 0.5, 1], tpr [0, 0.5, 0.5, 1, 1], thresholds [inf, 0.8, 0.4, 0.35, 0.1]
    let roc = RocCurve::new(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    let fpr: Vec<f64> = roc.points.iter().map(|p| p.fpr).collect();
    let tpr: Vec<f64> = roc.points.iter().map(|p| p.tpr).collect();
    let thr: Vec<f64> = roc.points.iter().map(|p| p.threshold).collect();
    assert_eq!(fpr, [0.0, 0.0, 0.5, 0.5, 1.0]);
    assert_eq!(tpr, [0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(thr, [f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
}

#[test]
fn threshold_choice_by_criterion() {
    // scores 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 with truth T T F T F F T F (4 pos, 4 neg)
    let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2];
    let truth = [true, true, false, true, false, false, true, false];
    // By hand, per threshold t (predict >= t): (tp, fp)
    // 0.9:(1,0) 0.8:(2,0) 0.7:(2,1) 0.6:(3,1) 0.5:(3,2) 0.4:(3,3) 0.3:(4,3) 0.2:(4,4)
    // F1 = 2tp/(2tp+fp+fn): 0.6:6/8=0.75, 0.3:8/11=0.727, 0.8:4/6=0.667 → 0.6
    let op = choose_threshold(&scores, &truth, ThresholdCriterion::F1).unwrap();
    assert_eq!(op.threshold, 0.6);
    close(op.value, 0.75);
    assert_eq!((op.confusion.tp, op.confusion.fp, op.confusion.tn, op.confusion.fn_), (3, 1, 3, 1));
    // Youden = tpr - fpr: 0.8: 0.5, 0.6: 0.75-0.25=0.5 → tie, highest threshold wins: 0.8
    let op = choose_threshold(&scores, &truth, ThresholdCriterion::Youden).unwrap();
    assert_eq!(op.threshold, 0.8);
    close(op.value, 0.5);
    let op = choose_threshold(&scores, &truth, ThresholdCriterion::BalancedAccuracy).unwrap();
    assert_eq!(op.threshold, 0.8);
    close(op.value, 0.75);
    // The chosen point reproduces itself through from_scores.
    let c = Confusion::from_scores(&scores, &truth, op.threshold).unwrap();
    assert_eq!(c, op.confusion);
}

#[test]
fn threshold_with_a_single_class_is_defined() {
    // Only healthy samples: best F1 is 0 everywhere; +inf (predict none) is chosen.
    let op = choose_threshold(&[0.2, 0.4], &[false, false], ThresholdCriterion::F1).unwrap();
    assert_eq!(op.threshold, f64::INFINITY);
    assert_eq!(op.value, 0.0);
}

/// Group bootstrap: groups move together; intervals widen with fewer independent groups;
/// paired replicates; reproducible for a seed.
#[test]
fn group_bootstrap_resamples_groups() {
    use mri_metrics::{subset_metrics, GroupBootstrap};
    // 40 items: 20 right, 20 wrong, in 4 groups of 10 identical items (2 right, 2 wrong groups).
    let truth: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
    let scores: Vec<f64> = (0..40)
        .map(|i| {
            if (i / 10) % 2 == 0 {
                if truth[i] {
                    0.9
                } else {
                    0.1
                }
            } else if truth[i] {
                0.1
            } else {
                0.9
            }
        })
        .collect();
    let groups_4: Vec<usize> = (0..40).map(|i| i / 10).collect();
    let groups_40: Vec<usize> = (0..40).collect();
    let acc = |idx: &[usize]| Some(subset_metrics(&scores, &truth, 0.5, idx).unwrap().accuracy);
    let wide = GroupBootstrap::new(&groups_4, 1).unwrap().interval(acc).unwrap();
    let narrow = GroupBootstrap::new(&groups_40, 1).unwrap().interval(acc).unwrap();
    assert!(wide.low <= 0.25 && wide.high >= 0.75, "{wide:?}");
    assert!(narrow.high - narrow.low < wide.high - wide.low, "{narrow:?} vs {wide:?}");
    // A statistic that only ever sees whole groups: accuracy is a multiple of 1/4.
    let b = GroupBootstrap::new(&groups_4, 7).unwrap();
    assert_eq!(b.n_groups(), 4);
    assert_eq!(b.interval(acc), b.interval(acc));
    let i = b.interval(acc).unwrap();
    assert!([i.low, i.high].iter().all(|v| (v * 4.0 - (v * 4.0).round()).abs() < 1e-9), "{i:?}");
    // A paired difference of a classifier with itself is exactly 0.
    let diff = b.interval(|idx| Some(acc(idx)? - acc(idx)?)).unwrap();
    assert_eq!((diff.low, diff.high), (0.0, 0.0));
    assert!(GroupBootstrap::new::<usize>(&[], 0).is_err());
}
