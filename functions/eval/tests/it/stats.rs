//! The statistics against values worked out independently of this code (the Wilson bounds with the
//! textbook formula in Python; 0/10 → 0–27.75% and 50/100 → 40.38–59.62% are the usual examples).

use cadre_eval::stats::{histogram, quantile, wilson95};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 5e-4
}

#[test]
fn wilson_intervals_match_known_values_and_stay_in_range() {
    let cases = [
        ((4, 6), (0.3000, 0.9032)),
        ((0, 10), (0.0, 0.2775)),
        ((10, 10), (0.7225, 1.0)),
        ((50, 100), (0.4038, 0.5962)),
        ((1, 1), (0.2065, 1.0)),
    ];
    for ((k, n), (lo, hi)) in cases {
        let (l, h) = wilson95(k, n).unwrap();
        assert!(close(l, lo) && close(h, hi), "{k}/{n}: ({l}, {h}) != ({lo}, {hi})");
    }
    assert_eq!(wilson95(0, 0), None);
}

#[test]
fn quantiles_interpolate_between_ranks() {
    assert_eq!(quantile(&[], 0.5), None);
    assert_eq!(quantile(&[7], 0.9), Some(7.0));
    assert_eq!(quantile(&[4, 1, 3, 2], 0.5), Some(2.5));
    assert_eq!(quantile(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.9), Some(91.0));
    assert_eq!(quantile(&[1, 2, 3], 0.0), Some(1.0));
    assert_eq!(quantile(&[1, 2, 3], 1.0), Some(3.0));
}

#[test]
fn histograms_put_every_value_in_one_bin() {
    let bins = histogram(&[0, 1, 5, 9, 10], 2);
    assert_eq!(bins, vec![(5.0, 2), (10.0, 3)]);
    assert_eq!(histogram(&[], 3).iter().map(|b| b.1).sum::<usize>(), 0);
    assert_eq!(histogram(&[0, 0], 0), vec![(1.0, 2)]);
}
