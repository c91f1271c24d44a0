//! The statistics a summary reports.
//!
//! Solve rates come with a Wilson score interval rather than the textbook normal one: suites are
//! small and rates are often near 0 or 1, where the normal interval collapses to a point or leaves
//! [0, 1]; Wilson's stays inside and keeps its coverage.

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score 95% interval of `successes` out of `trials`, as fractions; `None` for no trials.
#[must_use]
#[allow(clippy::cast_precision_loss)] // Counts of tasks are far below 2^52.
pub fn wilson95(successes: usize, trials: usize) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `values` by linear interpolation between the closest ranks (the
/// default of numpy and R's type 7); `None` when empty.
#[must_use]
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn quantile(values: &[u64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    // position is within [0, len - 1], so both indices are in range.
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    Some(sorted[below] as f64 * (1.0 - weight) + sorted[above] as f64 * weight)
}

/// Equal-width bins over `[0, max]` of `values`: `(upper bound, count)` per bin, `bins` of them (at
/// least one). Every value lands in exactly one bin.
#[must_use]
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn histogram(values: &[u64], bins: usize) -> Vec<(f64, usize)> {
    let bins = bins.max(1);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = max / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values {
        let bin = ((v as f64 / width) as usize).min(bins - 1);
        counts[bin] += 1;
    }
    counts.into_iter().enumerate().map(|(i, c)| ((i + 1) as f64 * width, c)).collect()
}
