//! Sampling: greedy, temperature, top-k, top-p, min-p and repetition penalty, seeded.
//!
//! The GPU narrows the vocabulary first (argmax, or top-k candidates), so only a few numbers
//! cross to the host; the full logits come back only when the filters need every token.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// What the user asked for. `temperature == 0` means greedy.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1 = off).
    pub top_p: f32,
    /// Drop tokens below min_p times the top probability (0 = off).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of recent tokens (1 = off).
    pub repetition_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// How much of the logits the sampler needs from the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogitsNeed {
    /// Greedy without penalty: the index of the largest logit.
    Argmax,
    /// The k largest (value, index) pairs.
    TopK(usize),
    /// Every logit (repetition penalty can move any token, or top-k is off).
    Full,
}

/// The most candidates the GPU top-k kernel returns.
pub const MAX_GPU_TOP_K: usize = 64;

impl SamplingParams {
    pub fn greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    pub fn need(&self) -> LogitsNeed {
        let penalty = self.repetition_penalty != 1.0 && self.repeat_last_n > 0;
        match (self.greedy(), penalty) {
            (true, false) => LogitsNeed::Argmax,
            (false, false) if self.top_k > 0 && self.top_k <= MAX_GPU_TOP_K => {
                LogitsNeed::TopK(self.top_k)
            }
            _ => LogitsNeed::Full,
        }
    }
}

pub struct Sampler {
    pub params: SamplingParams,
    rng: Pcg64,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = Pcg64::seed_from_u64(params.seed);
        Sampler { params, rng }
    }

    /// Pick a token from `(logit, id)` candidates (all logits, or the GPU's top-k).
    /// `recent` are the tokens seen so far (the penalty looks at the last `repeat_last_n`).
    pub fn sample(&mut self, mut cands: Vec<(f32, u32)>, recent: &[u32]) -> u32 {
        let p = &self.params;
        if cands.is_empty() {
            return 0;
        }
        if p.repetition_penalty != 1.0 && p.repeat_last_n > 0 {
            let window = &recent[recent.len().saturating_sub(p.repeat_last_n)..];
            for c in cands.iter_mut() {
                if window.contains(&c.1) {
                    c.0 = if c.0 > 0.0 {
                        c.0 / p.repetition_penalty
                    } else {
                        c.0 * p.repetition_penalty
                    };
                }
            }
        }
        // Descending by logit; ties go to the lower id, as the GPU argmax does.
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if p.greedy() {
            return cands[0].1;
        }
        if p.top_k > 0 {
            cands.truncate(p.top_k);
        }
        let max = cands[0].0;
        let mut probs: Vec<f64> = cands
            .iter()
            .map(|c| (((c.0 - max) / p.temperature) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, q) in probs.iter().enumerate() {
                acc += q;
                if acc >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
        }
        let total: f64 = probs[..keep].iter().sum();
        let mut r = self.rng.random::<f64>() * total;
        for (i, q) in probs[..keep].iter().enumerate() {
            if r < *q {
                return cands[i].1;
            }
            r -= q;
        }
        cands[keep - 1].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Vec<(f32, u32)> {
        logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, i as u32))
            .collect()
    }

    #[test]
    fn greedy_takes_the_largest_lowest_id_on_ties() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(cands(&[1.0, 3.0, 3.0, -1.0]), &[]), 1);
        assert_eq!(SamplingParams::default().need(), LogitsNeed::Argmax);
    }

    #[test]
    fn penalty_changes_greedy_choice_and_needs_full_logits() {
        let p = SamplingParams {
            repetition_penalty: 2.0,
            ..Default::default()
        };
        assert_eq!(p.need(), LogitsNeed::Full);
        let mut s = Sampler::new(p);
        // 3.0 / 2 = 1.5 < 2.0: token 1 was seen, so token 2 wins.
        assert_eq!(s.sample(cands(&[0.0, 3.0, 2.0]), &[1]), 2);
        // Negative logits are multiplied, never raised.
        assert_eq!(s.sample(cands(&[-1.0, -0.6]), &[0]), 1);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_filters() {
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        };
        assert_eq!(p.need(), LogitsNeed::TopK(3));
        let logits = cands(&[2.0, 1.9, 1.8, 5.0, -3.0]);
        let run = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..200)
                .map(|_| s.sample(logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let a = run(&p);
        assert_eq!(a, run(&p), "same seed, same tokens");
        assert!(a.iter().all(|t| [3, 0, 1].contains(t)), "top-3 only");
        assert!(a.iter().filter(|&&t| t == 3).count() > 150, "5.0 dominates");
        // min_p 0.5 keeps only tokens within half of the top probability: here only id 3.
        let strict = SamplingParams {
            min_p: 0.5,
            ..p.clone()
        };
        assert!(run(&strict).iter().all(|&t| t == 3));
        // top_p tiny keeps only the top token.
        let nucleus = SamplingParams { top_p: 0.01, ..p };
        assert!(run(&nucleus).iter().all(|&t| t == 3));
    }

    #[test]
    fn high_temperature_spreads_choices() {
        let p = SamplingParams {
            temperature: 100.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 1,
            ..Default::default()
        };
        assert_eq!(p.need(), LogitsNeed::Full);
        let mut s = Sampler::new(p);
        let picks: std::collections::HashSet<u32> = (0..300)
            .map(|_| s.sample(cands(&[1.0, 0.0, 0.5, 0.2]), &[]))
            .collect();
        assert_eq!(picks.len(), 4);
    }
}
