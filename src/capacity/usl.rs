//! Gunther's Universal Scalability Law fitted to throughput measured at several concurrencies:
//!
//! ```text
//! X(N) = λ·N / (1 + σ·(N − 1) + κ·N·(N − 1))
//! ```
//!
//! σ is contention (the serial fraction), κ coherency (the cost of keeping shared state agreed:
//! past the peak, more publishers lower throughput), λ the throughput of one. The fit is least
//! squares on X: for fixed (σ, κ) the best λ is linear (Σ y·f / Σ f²), so the search is over two
//! bounded parameters: a coarse grid, then a shrinking local search around the best cell.

use serde::Serialize;

/// One measured point: `concurrency` publishers gave `throughput` acked events per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub concurrency: f64,
    pub throughput: f64,
}

/// A fitted curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UslFit {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// Coefficient of determination of the fit over the measured points.
    pub r_squared: f64,
    /// The concurrency of peak throughput, `sqrt((1 − σ) / κ)`; `None` when κ is 0 (no peak).
    pub peak_concurrency: Option<f64>,
    /// The throughput at the peak (or the asymptote λ/σ without one; `None` if both are unbounded).
    pub peak_throughput: Option<f64>,
}

impl UslFit {
    /// The fitted throughput at `n`.
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * shape(self.sigma, self.kappa, n)
    }
}

fn shape(sigma: f64, kappa: f64, n: f64) -> f64 {
    n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// Fits the law; needs at least three points at distinct concurrencies, all positive.
pub fn fit(points: &[Point]) -> Result<UslFit, String> {
    let usable: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.concurrency >= 1.0 && p.throughput.is_finite() && p.throughput > 0.0)
        .collect();
    let mut distinct: Vec<f64> = usable.iter().map(|p| p.concurrency).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(format!(
            "a scalability fit needs throughput at 3 or more concurrencies, found {}",
            distinct.len()
        ));
    }
    let error = |sigma: f64, kappa: f64| -> (f64, f64) {
        let (mut yf, mut ff) = (0.0, 0.0);
        for p in &usable {
            let f = shape(sigma, kappa, p.concurrency);
            yf += p.throughput * f;
            ff += f * f;
        }
        let lambda = yf / ff;
        let sse = usable
            .iter()
            .map(|p| (p.throughput - lambda * shape(sigma, kappa, p.concurrency)).powi(2))
            .sum();
        (sse, lambda)
    };
    // Coarse grid: σ linear in [0, 1], κ logarithmic from 1e-6 to 1 (plus 0).
    let mut best = (f64::INFINITY, 0.0, 0.0);
    let kappas: Vec<f64> = std::iter::once(0.0)
        .chain((0..=60).map(|i| 10f64.powf(-6.0 + f64::from(i) * 0.1)))
        .collect();
    for i in 0..=100 {
        let sigma = f64::from(i) / 100.0;
        for &kappa in &kappas {
            let (sse, _) = error(sigma, kappa);
            if sse < best.0 {
                best = (sse, sigma, kappa);
            }
        }
    }
    // Local refinement: a pattern search whose step halves when no neighbour improves.
    let (mut sse, mut sigma, mut kappa) = best;
    let (mut ds, mut dk) = (0.01, kappa.max(1e-6));
    for _ in 0..200 {
        let mut improved = false;
        for (s, k) in [
            (sigma + ds, kappa),
            (sigma - ds, kappa),
            (sigma, kappa + dk),
            (sigma, kappa - dk),
        ] {
            if !(0.0..=1.0).contains(&s) || k < 0.0 {
                continue;
            }
            let (e, _) = error(s, k);
            if e < sse {
                (sse, sigma, kappa) = (e, s, k);
                improved = true;
            }
        }
        if !improved {
            ds /= 2.0;
            dk /= 2.0;
            if ds < 1e-7 {
                break;
            }
        }
    }
    let (_, lambda) = error(sigma, kappa);
    let mean = usable.iter().map(|p| p.throughput).sum::<f64>() / usable.len() as f64;
    let total: f64 = usable.iter().map(|p| (p.throughput - mean).powi(2)).sum();
    let r_squared = if total > 0.0 { 1.0 - sse / total } else { 1.0 };
    let peak_concurrency = (kappa > 1e-12).then(|| ((1.0 - sigma) / kappa).sqrt().max(1.0));
    let peak_throughput = match peak_concurrency {
        Some(n) => Some(lambda * shape(sigma, kappa, n)),
        None if sigma > 1e-12 => Some(lambda / sigma),
        None => None,
    };
    Ok(UslFit {
        lambda,
        sigma,
        kappa,
        r_squared,
        peak_concurrency,
        peak_throughput,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(lambda: f64, sigma: f64, kappa: f64, ns: &[f64]) -> Vec<Point> {
        ns.iter()
            .map(|&n| Point {
                concurrency: n,
                throughput: lambda * shape(sigma, kappa, n),
            })
            .collect()
    }

    #[test]
    fn recovers_the_parameters_of_an_exact_curve() {
        let points = curve(10_000.0, 0.05, 0.002, &[1.0, 2.0, 4.0, 8.0, 16.0]);
        let f = fit(&points).expect("fits");
        assert!((f.sigma - 0.05).abs() < 0.005, "{f:?}");
        assert!((f.kappa - 0.002).abs() < 0.0005, "{f:?}");
        assert!((f.lambda - 10_000.0).abs() / 10_000.0 < 0.02, "{f:?}");
        assert!(f.r_squared > 0.999, "{f:?}");
        // Peak at sqrt(0.95 / 0.002) ≈ 21.8 publishers.
        let peak = f.peak_concurrency.expect("a peak");
        assert!((peak - 21.8).abs() < 2.0, "{f:?}");
    }

    #[test]
    fn a_curve_that_falls_past_its_peak_has_a_peak_inside_the_range() {
        let points = curve(20_000.0, 0.1, 0.05, &[1.0, 2.0, 4.0, 8.0, 16.0]);
        let f = fit(&points).expect("fits");
        let peak = f.peak_concurrency.expect("a peak");
        // sqrt(0.9 / 0.05) ≈ 4.2.
        assert!((peak - 4.24).abs() < 0.5, "{f:?}");
        assert!(f.throughput(16.0) < f.throughput(4.0));
    }

    #[test]
    fn linear_scaling_has_no_peak() {
        let points = curve(1000.0, 0.0, 0.0, &[1.0, 2.0, 4.0, 8.0]);
        let f = fit(&points).expect("fits");
        assert!(f.sigma < 0.01 && f.kappa < 1e-5, "{f:?}");
        assert!(f.r_squared > 0.999);
    }

    #[test]
    fn too_few_points_are_refused() {
        let points = curve(1000.0, 0.1, 0.0, &[1.0, 2.0, 2.0]);
        assert!(fit(&points).is_err());
    }
}
