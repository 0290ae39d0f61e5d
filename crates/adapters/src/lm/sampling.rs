//! Choosing the next token: greedy or sampled (temperature, top-k, top-p), with transformers'
//! repetition penalty, from a small seeded generator so runs repeat exactly.

use modelmux_registry::GenerationDefaults;

use crate::lm::GenerationOptions;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence on every platform,
/// which is all sampling needs; no cryptographic property is wanted.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The probabilities of `logits` (max-subtracted, so large logits do not overflow).
pub(crate) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// One prompt's next-token chooser.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    /// `None` = greedy.
    sampling: Option<Sampling>,
    repetition_penalty: f32,
    rng: SeededRng,
}

#[derive(Debug, Clone, Copy)]
struct Sampling {
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
}

impl Sampler {
    /// Checks the options (with the catalog's defaults) and builds the sampler of prompt `row`.
    /// Each row has its own generator, seeded from the seed and the row, so a prompt samples
    /// the same tokens whether it runs alone (row 0) or first in a batch.
    pub(crate) fn new(
        options: &GenerationOptions,
        defaults: Option<&GenerationDefaults>,
        row: usize,
    ) -> Result<Self, String> {
        let default_temperature = defaults.and_then(|d| d.temperature).map(|t| t as f32);
        let top_p = options
            .top_p
            .or(defaults.and_then(|d| d.top_p).map(|p| p as f32));
        let asked = options.temperature.is_some_and(|t| t > 0.0)
            || options.top_k.is_some()
            || options.top_p.is_some();
        let temperature = options.temperature.or(default_temperature);
        let sampling = match temperature {
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(format!("temperature must be ≥ 0, not {t}"));
            }
            Some(t) if t > 0.0 => Some(t),
            Some(_) if options.temperature.is_some() => None,
            _ if asked => Some(1.0),
            _ => None,
        };
        if let Some(p) = top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(format!("top_p must be in (0, 1], not {p}"));
        }
        if options.top_k == Some(0) {
            return Err("top_k must be at least 1".to_owned());
        }
        let repetition_penalty = options.repetition_penalty.unwrap_or(1.0);
        if !(repetition_penalty.is_finite() && repetition_penalty > 0.0) {
            return Err(format!(
                "repetition_penalty must be > 0, not {repetition_penalty}"
            ));
        }
        let seed = options.seed.unwrap_or(0);
        Ok(Self {
            sampling: sampling.map(|temperature| Sampling {
                temperature,
                top_k: options.top_k,
                top_p,
            }),
            repetition_penalty,
            rng: SeededRng::new(
                seed.wrapping_add((row as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)),
            ),
        })
    }

    /// Chooses the next token from `logits` (modified in place); `history` is the prompt and
    /// the tokens generated so far. Processors run in transformers' order: repetition penalty,
    /// temperature, top-k, top-p.
    pub(crate) fn choose(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        if self.repetition_penalty != 1.0 {
            let mut seen = vec![false; logits.len()];
            for &token in history {
                if let Some(slot) = seen.get_mut(token as usize)
                    && !std::mem::replace(slot, true)
                {
                    let score = &mut logits[token as usize];
                    *score = if *score < 0.0 {
                        *score * self.repetition_penalty
                    } else {
                        *score / self.repetition_penalty
                    };
                }
            }
        }
        let Some(sampling) = self.sampling else {
            return argmax(logits);
        };
        logits.iter_mut().for_each(|l| *l /= sampling.temperature);
        // Candidates sorted by logit, most likely first (stable, so ties keep the lower id).
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if let Some(k) = sampling.top_k {
            // transformers keeps every token tied with the k-th.
            let threshold = logits[order[k.min(order.len()) - 1]];
            order.retain(|&i| logits[i] >= threshold);
        }
        let kept: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
        let mut probabilities = softmax(&kept);
        if let Some(p) = sampling.top_p {
            let mut cumulative = 0.0;
            let mut keep = probabilities.len();
            for (n, probability) in probabilities.iter().enumerate() {
                cumulative += probability;
                if cumulative >= p {
                    keep = n + 1;
                    break;
                }
            }
            probabilities.truncate(keep.max(1));
            let sum: f32 = probabilities.iter().sum();
            probabilities.iter_mut().for_each(|q| *q /= sum);
        }
        let draw = self.rng.next_f64() as f32;
        let mut cumulative = 0.0;
        for (n, probability) in probabilities.iter().enumerate() {
            cumulative += probability;
            if draw < cumulative {
                return order[n] as u32;
            }
        }
        // Rounding can leave the sum a hair under 1: the last candidate takes the remainder.
        order[probabilities.len() - 1] as u32
    }
}

/// The index of the largest logit, the first one on ties (as `torch.argmax`).
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut sampler = Sampler::new(&GenerationOptions::default(), None, 0).unwrap();
        assert_eq!(sampler.choose(&mut [0.1, 2.0, 2.0, -1.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_scores() {
        let options = GenerationOptions {
            repetition_penalty: Some(2.0),
            ..Default::default()
        };
        let mut sampler = Sampler::new(&options, None, 0).unwrap();
        let mut logits = [3.0, 2.0, -1.0];
        assert_eq!(sampler.choose(&mut logits, &[0, 2, 0]), 1);
        assert_eq!(logits, [1.5, 2.0, -2.0]);
    }

    #[test]
    fn seeded_sampling_repeats_and_respects_top_k() {
        let options = GenerationOptions {
            temperature: Some(1.0),
            top_k: Some(2),
            seed: Some(7),
            ..Default::default()
        };
        let draw = |row| {
            let mut sampler = Sampler::new(&options, None, row).unwrap();
            (0..64)
                .map(|_| sampler.choose(&mut [1.0, 0.5, 0.9, -3.0], &[]))
                .collect::<Vec<_>>()
        };
        let first = draw(0);
        assert_eq!(first, draw(0));
        assert!(first.iter().all(|&t| t == 0 || t == 2));
        assert!(first.contains(&0) && first.contains(&2));
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let options = GenerationOptions {
            top_p: Some(0.5),
            seed: Some(1),
            ..Default::default()
        };
        let mut sampler = Sampler::new(&options, None, 0).unwrap();
        // Token 0 alone has probability > 0.5, so it is always chosen.
        assert!((0..32).all(|_| sampler.choose(&mut [5.0, 1.0, 1.0], &[]) == 0));
    }

    #[test]
    fn bad_options_are_errors() {
        let bad = |options: GenerationOptions| Sampler::new(&options, None, 0).is_err();
        assert!(bad(GenerationOptions {
            temperature: Some(-1.0),
            ..Default::default()
        }));
        assert!(bad(GenerationOptions {
            top_p: Some(1.5),
            ..Default::default()
        }));
        assert!(bad(GenerationOptions {
            top_k: Some(0),
            ..Default::default()
        }));
        assert!(bad(GenerationOptions {
            repetition_penalty: Some(0.0),
            ..Default::default()
        }));
    }
}
