//! BLIP captioning: `vision_model.onnx` once per image, then `text_decoder.onnx` one token at a
//! time with its self-attention KV cache, greedy or beam search as transformers' `generate()`
//! does it (the same candidates, length normalisation and stopping rule), so captions are
//! token-identical to the reference.

use modelmux_runtime_ort::{Inputs, SessionPool};
use ndarray::{Array2, Array3, Array4, ArrayD, Axis, Ix3, Ix4};

use super::text::TextInputs;
use super::{BoxFuture, Caption, CaptionOptions, ImageCaptioner, manifest_extra};
use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::{Image, ImageProcessor};

/// A very low score: what transformers adds to rule a beam out.
const RULED_OUT: f32 = -1.0e9;

/// BLIP's vision encoder and cached text decoder.
#[derive(Debug)]
pub struct BlipCaptioner {
    model: String,
    vision: SessionPool,
    decoder: SessionPool,
    tokenizer: TextInputs,
    processor: ImageProcessor,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    bos: i64,
    sep: i64,
    default_max_new_tokens: usize,
}

/// The self-attention cache: one key and one value tensor per layer, [rows, heads, past, dim].
type Cache = Vec<(Array4<f32>, Array4<f32>)>;

impl BlipCaptioner {
    /// Loads the vision encoder, the decoder and the tokenizer of the export.
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let extra = manifest_extra(context)?;
        let number = |key: &str| super::extra_number(context, &extra, key);
        let (layers, kv_heads, head_dim) = (
            number("num_layers")? as usize,
            number("num_key_value_heads")? as usize,
            number("head_dim")? as usize,
        );
        let (bos, sep) = (
            number("bos_token_id")? as i64,
            number("sep_token_id")? as i64,
        );
        let tokenizer = TextInputs::load(context)?;
        let processor = ImageProcessor::for_model(context)?;
        let vision = context.pool("vision_model.onnx", true)?;
        // The decoder's past length differs between requests, so its runs are never merged.
        let decoder = match context.pool("text_decoder.onnx", false) {
            Ok(decoder) => decoder,
            Err(e) => {
                vision.shutdown();
                return Err(e);
            }
        };
        let default_max_new_tokens = context
            .spec
            .params
            .generation
            .as_ref()
            .and_then(|g| g.max_new_tokens)
            .map_or(20, |n| n as usize);
        Ok(Self {
            model: context.model(),
            vision,
            decoder,
            tokenizer,
            processor,
            layers,
            kv_heads,
            head_dim,
            bos,
            sep,
            default_max_new_tokens,
        })
    }

    /// Stops both sessions.
    pub fn shutdown(&self) {
        self.vision.shutdown();
        self.decoder.shutdown();
    }

    /// The decoder prompt: `[bos]`, or the prefix as BLIP's processor tokenizes it
    /// (`[CLS] … [SEP]`) with the first token replaced by `bos` and the final `[SEP]` dropped,
    /// as `BlipForConditionalGeneration.generate` does.
    pub fn prompt_ids(&self, prefix: Option<&str>) -> Result<Vec<i64>, AdapterError> {
        let Some(prefix) = prefix.filter(|p| !p.trim().is_empty()) else {
            return Ok(vec![self.bos]);
        };
        let mut ids = self.tokenizer.ids(prefix)?;
        if ids.len() < 2 {
            return Ok(vec![self.bos]);
        }
        ids[0] = self.bos;
        ids.pop();
        Ok(ids)
    }

    /// Generates from explicit prompt ids: every id of the result, prompt included, as
    /// `generate()` returns them.
    pub async fn generate(
        &self,
        image: &Image,
        prompt: &[i64],
        beams: usize,
        max_new_tokens: usize,
    ) -> Result<Vec<i64>, AdapterError> {
        if beams == 0 || prompt.is_empty() {
            return Err(self.invalid("the beam width and the prompt need at least one element"));
        }
        let pixels = self
            .processor
            .pixel_values(&self.model, std::slice::from_ref(image))?;
        let mut outputs = self
            .vision
            .run(Inputs::new().with("pixel_values", pixels))
            .await?;
        let embeds = outputs
            .take::<f32>("image_embeds")?
            .into_dimensionality::<Ix3>()
            .map_err(|e| self.invalid(&e.to_string()))?;
        if max_new_tokens == 0 {
            return Ok(prompt.to_vec());
        }
        if beams == 1 {
            self.greedy(&embeds, prompt, max_new_tokens).await
        } else {
            self.beam_search(&embeds, prompt, beams, max_new_tokens)
                .await
        }
    }

    fn invalid(&self, reason: &str) -> AdapterError {
        AdapterError::InvalidRequest {
            model: self.model.clone(),
            reason: reason.to_owned(),
        }
    }

    fn empty_cache(&self, rows: usize) -> Cache {
        (0..self.layers)
            .map(|_| {
                let shape = (rows, self.kv_heads, 0, self.head_dim);
                (Array4::zeros(shape), Array4::zeros(shape))
            })
            .collect()
    }

    /// One decoder run: `ids` [rows, n] after `cache`; returns the last position's logits
    /// [rows, vocab] and the grown cache.
    async fn step(
        &self,
        ids: Array2<i64>,
        cache: Cache,
        embeds: &Array3<f32>,
    ) -> Result<(Array2<f32>, Cache), AdapterError> {
        let (rows, n) = ids.dim();
        let past = cache.first().map_or(0, |(k, _)| k.dim().2);
        let mask = Array2::<i64>::ones((rows, past + n));
        let positions = Array2::from_shape_fn((rows, n), |(_, j)| (past + j) as i64);
        let mut inputs = Inputs::new()
            .with("input_ids", ids)
            .with("attention_mask", mask)
            .with("position_ids", positions)
            .with("encoder_hidden_states", embeds.clone());
        for (i, (k, v)) in cache.into_iter().enumerate() {
            inputs.push(format!("past_key_values.{i}.key"), k);
            inputs.push(format!("past_key_values.{i}.value"), v);
        }
        let mut outputs = self.decoder.run(inputs).await?;
        let logits = outputs.take::<f32>("logits")?;
        let last = last_position(&logits)
            .ok_or_else(|| self.invalid("the decoder returned logits of an unexpected shape"))?;
        let mut next = Vec::with_capacity(self.layers);
        for i in 0..self.layers {
            let key = four(outputs.take::<f32>(&format!("present.{i}.key"))?)
                .ok_or_else(|| self.invalid("bad present key"))?;
            let value = four(outputs.take::<f32>(&format!("present.{i}.value"))?)
                .ok_or_else(|| self.invalid("bad present value"))?;
            next.push((key, value));
        }
        Ok((last, next))
    }

    async fn greedy(
        &self,
        embeds: &Array3<f32>,
        prompt: &[i64],
        max_new_tokens: usize,
    ) -> Result<Vec<i64>, AdapterError> {
        let mut tokens = prompt.to_vec();
        let ids = Array2::from_shape_vec((1, prompt.len()), prompt.to_vec())
            .map_err(|e| self.invalid(&e.to_string()))?;
        let (mut logits, mut cache) = self.step(ids, self.empty_cache(1), embeds).await?;
        for generated in 1..=max_new_tokens {
            let next = argmax(logits.row(0).as_slice().unwrap_or(&[])) as i64;
            tokens.push(next);
            if next == self.sep || generated == max_new_tokens {
                break;
            }
            (logits, cache) = self
                .step(Array2::from_elem((1, 1), next), cache, embeds)
                .await?;
        }
        Ok(tokens)
    }

    /// transformers' beam search (length penalty 1, `early_stopping=False`): 2·k candidates per
    /// step, the best k unfinished continue, the best k finished (scored by sum of
    /// log-probabilities over generated length) are kept, and the search stops when no running
    /// beam can beat the worst kept one, or at the length limit.
    async fn beam_search(
        &self,
        embeds: &Array3<f32>,
        prompt: &[i64],
        k: usize,
        max_new_tokens: usize,
    ) -> Result<Vec<i64>, AdapterError> {
        let prompt_len = prompt.len();
        let max_len = prompt_len + max_new_tokens;
        let embeds = embeds
            .broadcast((k, embeds.dim().1, embeds.dim().2))
            .map(|e| e.to_owned())
            .ok_or_else(|| self.invalid("cannot repeat image embeddings"))?;
        let ids = Array2::from_shape_fn((k, prompt_len), |(_, j)| prompt[j]);
        let (mut logits, mut cache) = self.step(ids, self.empty_cache(k), &embeds).await?;
        let mut running: Vec<Vec<i64>> = vec![prompt.to_vec(); k];
        let mut running_scores: Vec<f32> = (0..k)
            .map(|i| if i == 0 { 0.0 } else { RULED_OUT })
            .collect();
        let mut finished: Vec<(Vec<i64>, f32, bool)> = vec![(prompt.to_vec(), RULED_OUT, false); k];
        let mut improvable = true;
        let mut cur_len = prompt_len;
        loop {
            let vocab = logits.dim().1;
            let mut scored: Vec<(f32, usize)> = Vec::with_capacity(k * vocab);
            for (beam, row) in logits.outer_iter().enumerate() {
                let row = row.to_vec();
                for (token, lp) in log_softmax(&row).into_iter().enumerate() {
                    scored.push((lp + running_scores[beam], beam * vocab + token));
                }
            }
            let candidates = top(&scored, 2 * k);
            let hits: Vec<bool> = candidates
                .iter()
                .map(|&(_, idx)| (idx % vocab) as i64 == self.sep || cur_len + 1 >= max_len)
                .collect();
            let sequences: Vec<Vec<i64>> = candidates
                .iter()
                .map(|&(_, idx)| {
                    let mut s = running[idx / vocab].clone();
                    s.push((idx % vocab) as i64);
                    s
                })
                .collect();
            // The next running beams: the best candidates that did not stop.
            let run_scores: Vec<(f32, usize)> = candidates
                .iter()
                .enumerate()
                .map(|(j, &(s, _))| (if hits[j] { s + RULED_OUT } else { s }, j))
                .collect();
            let keep = top(&run_scores, k);
            // The finished beams: the old ones and the candidates among the top k that stopped.
            let length = (cur_len + 1 - prompt_len) as f32;
            let mut merged: Vec<(f32, usize)> =
                finished.iter().enumerate().map(|(i, f)| (f.1, i)).collect();
            let mut merged_items = finished.clone();
            for (j, &(s, _)) in candidates.iter().enumerate() {
                let just_finished = hits[j] && j < k;
                let mut score = s / length;
                if !improvable {
                    score += RULED_OUT;
                }
                if !just_finished {
                    score += RULED_OUT;
                }
                merged.push((score, merged_items.len()));
                merged_items.push((sequences[j].clone(), score, just_finished));
            }
            finished = top(&merged, k)
                .into_iter()
                .map(|(_, i)| merged_items[i].clone())
                .collect();
            running = keep.iter().map(|&(_, j)| sequences[j].clone()).collect();
            running_scores = keep.iter().map(|&(s, _)| s).collect();
            let sources: Vec<usize> = keep.iter().map(|&(_, j)| candidates[j].1 / vocab).collect();
            cur_len += 1;
            // Can the best running beam still beat the worst finished one?
            let best_running = running_scores[0] / (cur_len - prompt_len) as f32;
            let worst_finished = finished.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
            improvable = improvable
                && finished
                    .iter()
                    .any(|f| best_running > if f.2 { worst_finished } else { RULED_OUT });
            if !improvable || hits.iter().all(|&h| h) {
                break;
            }
            // Reorder the cache to follow the surviving beams, then feed their new tokens.
            cache = cache
                .into_iter()
                .map(|(key, value)| {
                    (
                        key.select(Axis(0), &sources),
                        value.select(Axis(0), &sources),
                    )
                })
                .collect();
            let next =
                Array2::from_shape_fn((k, 1), |(i, _)| *running[i].last().unwrap_or(&self.sep));
            (logits, cache) = self.step(next, cache, &embeds).await?;
        }
        Ok(finished.swap_remove(0).0)
    }
}

impl ImageCaptioner for BlipCaptioner {
    fn model(&self) -> &str {
        &self.model
    }

    fn caption<'a>(
        &'a self,
        image: &'a Image,
        options: &'a CaptionOptions,
    ) -> BoxFuture<'a, Result<Caption, AdapterError>> {
        Box::pin(async move {
            let prompt = self.prompt_ids(options.prefix.as_deref())?;
            let max_new_tokens = options
                .max_new_tokens
                .unwrap_or(self.default_max_new_tokens);
            let tokens = self
                .generate(image, &prompt, options.beams, max_new_tokens)
                .await?;
            let text = self.tokenizer.decode(&tokens)?;
            Ok(Caption { text, tokens })
        })
    }
}

/// The logits of the last position, [rows, vocab].
fn last_position(logits: &ArrayD<f32>) -> Option<Array2<f32>> {
    let logits = logits.view().into_dimensionality::<Ix3>().ok()?;
    let n = logits.dim().1;
    (n > 0).then(|| logits.index_axis(Axis(1), n - 1).to_owned())
}

fn four(array: ArrayD<f32>) -> Option<Array4<f32>> {
    array.into_dimensionality::<Ix4>().ok()
}

/// The first index of the largest value (torch's argmax picks the first on ties).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// `x − max − ln Σ exp(x − max)`, as torch computes it in float32.
fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln();
    row.iter().map(|&x| x - max - log_sum).collect()
}

/// The `n` largest (score, item) pairs, best first; equal scores keep their input order.
fn top(items: &[(f32, usize)], n: usize) -> Vec<(f32, usize)> {
    let mut sorted: Vec<(f32, usize)> = items.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    sorted.truncate(n);
    sorted
}
