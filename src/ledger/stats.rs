//! Small order statistics over run figures (NaN and infinities are ignored).

fn finite_sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The q-quantile (0..=1) with linear interpolation between neighbours; None when empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let v = finite_sorted(values);
    if v.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 0.5)
}

/// Smallest and largest finite value.
pub fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let v = finite_sorted(values);
    Some((*v.first()?, *v.last()?))
}

/// (max - min) / median: how far repeated runs disagree, as a fraction of the typical value.
pub fn relative_spread(values: &[f64]) -> Option<f64> {
    let (lo, hi) = min_max(values)?;
    let m = median(values)?;
    (m > 0.0).then(|| (hi - lo) / m)
}

/// Per-token latencies in milliseconds to (p50, p95), for a record's results.
pub fn latency_p50_p95(latencies_ms: &[f64]) -> Option<(f64, f64)> {
    Some((
        percentile(latencies_ms, 0.5)?,
        percentile(latencies_ms, 0.95)?,
    ))
}
