//! Building and running the forward pass: one prebuilt dispatch list per decode step, prefill
//! plans per chunk length, and a readback of only what the sampler needs.

use crate::gpu::{ChunkedTensor, Dispatch, Gpu, GpuError, GpuTensor};
use crate::ops::attention::{Attention, Split};
use crate::ops::embed::Embedding;
use crate::ops::matmul::MatMul;
use crate::ops::matvec::{Fused, MatVecTune, QMatVec};
use crate::ops::norm::RmsNorm;
use crate::ops::rope::{Rope, RopeConfig, RopeStyle};
use crate::ops::rope_kv::{QkvLayout, RopeKv};
use crate::ops::topk::{Argmax, TopK};
use crate::ops::{Elementwise, StepParams};
use crate::sampling::LogitsNeed;

use super::llama::{view, Llama, ModelError, Result};

/// What one forward step hands back: as much of the last position's logits as was asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Logits {
    Argmax(u32),
    TopK(Vec<(f32, u32)>),
    Full(Vec<f32>),
}

impl Logits {
    /// `(logit, id)` candidates for the sampler.
    pub fn candidates(&self) -> Vec<(f32, u32)> {
        match self {
            Logits::Argmax(id) => vec![(0.0, *id)],
            Logits::TopK(v) => v.clone(),
            Logits::Full(v) => v.iter().enumerate().map(|(i, &l)| (l, i as u32)).collect(),
        }
    }
}

impl Llama {
    fn rope(&self, gpu: &Gpu) -> Result<Rope> {
        // GGUF llama files store q/k rows permuted for pairs (2i, 2i+1).
        let cfg = RopeConfig {
            n_rot: self.cfg.rope_dim,
            ..RopeConfig::new(
                self.cfg.head_dim,
                self.cfg.rope_theta as f64,
                RopeStyle::Interleaved,
            )
        };
        Ok(Rope::new(gpu, cfg)?)
    }

    fn attention(&self) -> Attention {
        Attention::new(self.cfg.n_heads, self.cfg.n_kv_heads, self.cfg.head_dim)
    }

    /// Decode's fused matvec: `y (+)= W x`, with x RMS-normed by `norm` first and (gate, up)
    /// row pairs combined when asked.
    fn fused_matvec(
        &self,
        gpu: &Gpu,
        w: &ChunkedTensor,
        x: &GpuTensor,
        y: &GpuTensor,
        fused: Fused<'_>,
    ) -> Result<Vec<Dispatch>> {
        let tune = MatVecTune::for_shape(gpu, w.dtype, w.shape[0], w.shape[1]);
        let tune = if fused.pairs() { tune.even() } else { tune };
        Ok(QMatVec::prepare_fused(gpu, w, x, y, fused, tune)?)
    }

    /// The dispatches of one decode step (one token at `step.pos`), up to the logits: per
    /// layer, norm+QKV, RoPE+KV store, attention, output+residual, norm+gate/up+SiLU,
    /// down+residual.
    pub(crate) fn build_decode(&self, gpu: &Gpu) -> Result<Vec<Dispatch>> {
        let c = &self.cfg;
        let a = &self.act;
        let (d, ff, nh, nkv, hd) = (c.n_embd, c.n_ff, c.n_heads, c.n_kv_heads, c.head_dim);
        let rope = self.rope(gpu)?;
        let attn = self.attention();
        let lay = QkvLayout::packed(nh, nkv, hd);
        let x1 = view(&a.x, &[1, d]);
        let x = view(&a.x, &[d]);
        let qkv = view(&a.qkv, &[lay.stride]);
        let qkv1 = view(&a.qkv, &[1, lay.stride]);
        let q = view(&a.qkv, &[nh, hd]);
        let (o, o2) = (view(&a.attn, &[nh * hd]), view(&a.attn, &[nh, hd]));
        let act = view(&a.act, &[ff]);
        let normed = |w| Fused {
            norm: Some((w, c.rms_eps)),
            ..Default::default()
        };
        let residual = Fused {
            accumulate: true,
            ..Default::default()
        };
        // RoPE and the KV store as the QKV matvec's epilogue where its threads own row pairs
        // (CPU adapters): one dispatch a layer fewer.
        let qkv_epilogue = rope.cfg.style == RopeStyle::Interleaved
            && self.weights.layers.first().is_some_and(|w| {
                let [rows, cols] = w.wqkv.shape;
                MatVecTune::for_shape(gpu, w.wqkv.dtype, rows, cols).tpr == 1
            });
        let mut plan = Embedding::prepare(gpu, &view(&a.ids, &[1]), &self.weights.token_embd, &x1)?;
        for (l, w) in self.weights.layers.iter().enumerate() {
            let layer = &self.kv.layers[l];
            let rope_kv = qkv_epilogue.then_some(RopeKv {
                rope: &rope,
                layout: lay,
                step: &a.step,
                kv: layer,
            });
            let fused = Fused {
                rope_kv,
                ..normed(&w.attn_norm)
            };
            plan.extend(self.fused_matvec(gpu, &w.wqkv, &x, &qkv, fused)?);
            if !qkv_epilogue {
                plan.push(rope.prepare_kv(gpu, &qkv1, lay, &a.step, layer)?);
            }
            plan.extend(attn.decode(gpu, &a.step, &q, layer, &o2, Split::Auto)?);
            plan.extend(self.fused_matvec(gpu, &w.wo, &o, &x, residual)?);
            let glu = Fused {
                glu: true,
                ..normed(&w.ffn_norm)
            };
            plan.extend(self.fused_matvec(gpu, &w.w_gate_up, &x, &act, glu)?);
            plan.extend(self.fused_matvec(gpu, &w.w_down, &act, &x, residual)?);
        }
        plan.extend(self.build_head(gpu, &x1)?);
        Ok(plan)
    }

    /// The output head on the row `x` [1, d], RMS-normed on load, into the logits.
    pub(crate) fn build_head(&self, gpu: &Gpu, x: &GpuTensor) -> Result<Vec<Dispatch>> {
        let fused = Fused {
            norm: Some((&self.weights.output_norm, self.cfg.rms_eps)),
            ..Default::default()
        };
        let x = view(x, &[self.cfg.n_embd]);
        self.fused_matvec(gpu, self.weights.lm_head(), &x, &self.act.logits, fused)
    }

    /// The dispatches of one prefill chunk of `t` tokens at `step.pos`, up to the residual
    /// stream of every token (the head runs on the last row only, see `run_prefill`).
    fn build_prefill(&self, gpu: &Gpu, t: usize) -> Result<Vec<Dispatch>> {
        let c = &self.cfg;
        let a = &self.act;
        let (d, ff, nh, nkv, hd) = (c.n_embd, c.n_ff, c.n_heads, c.n_kv_heads, c.head_dim);
        let norm = RmsNorm::new(c.rms_eps);
        let rope = self.rope(gpu)?;
        let attn = self.attention();
        let lay = QkvLayout::packed(nh, nkv, hd);
        let mm = MatMul::new(gpu);
        let mm_acc = MatMul::new(gpu).accumulate(true);
        let (x, xn) = (view(&a.x, &[t, d]), view(&a.xn, &[t, d]));
        let qkv = view(&a.qkv, &[t, lay.stride]);
        let q3 = view(&a.qkv, &[t, nh + 2 * nkv, hd]);
        let (o, o3) = (view(&a.attn, &[t, nh * hd]), view(&a.attn, &[t, nh, hd]));
        let gate_up = view(&a.gate_up, &[t, 2 * ff]);
        let act = view(&a.act, &[t, ff]);
        let mut plan = Embedding::prepare(gpu, &view(&a.ids, &[t]), &self.weights.token_embd, &x)?;
        for (l, w) in self.weights.layers.iter().enumerate() {
            let layer = &self.kv.layers[l];
            plan.push(norm.prepare(gpu, &x, &w.attn_norm, &xn)?);
            plan.extend(mm.prepare(gpu, &xn, &w.wqkv, &qkv)?);
            plan.push(rope.prepare_kv(gpu, &qkv, lay, &a.step, layer)?);
            plan.push(attn.prefill(gpu, &a.step, &q3, layer, &o3)?);
            plan.extend(mm_acc.prepare(gpu, &o, &w.wo, &x)?);
            plan.push(norm.prepare(gpu, &x, &w.ffn_norm, &xn)?);
            plan.extend(mm.prepare(gpu, &xn, &w.w_gate_up, &gate_up)?);
            plan.push(Elementwise::SiluMulPairs.prepare(gpu, &gate_up, &gate_up, &act)?);
            plan.extend(mm_acc.prepare(gpu, &act, &w.w_down, &x)?);
        }
        Ok(plan)
    }

    /// Dispatches that reduce the logits to what `need` asks for, into `act.pick`.
    fn build_pick(&self, gpu: &Gpu, need: LogitsNeed) -> Result<Vec<Dispatch>> {
        let a = &self.act;
        Ok(match need {
            LogitsNeed::Argmax => Argmax::prepare(gpu, &a.logits, &view(&a.pick, &[1]))?,
            LogitsNeed::TopK(k) => TopK { k }.prepare(gpu, &a.logits, &view(&a.pick, &[k, 2]))?,
            LogitsNeed::Full => Vec::new(),
        })
    }

    /// Run `tokens` (a prompt chunk list or one decode token) at the current position and
    /// return the last token's logits in the form `need` asks for.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward(&mut self, gpu: &Gpu, tokens: &[u32], need: LogitsNeed) -> Result<Logits> {
        pollster::block_on(self.forward_async(gpu, tokens, need))
    }

    pub async fn forward_async(
        &mut self,
        gpu: &Gpu,
        tokens: &[u32],
        need: LogitsNeed,
    ) -> Result<Logits> {
        if tokens.is_empty() {
            return Err(ModelError::Empty);
        }
        if self.pos + tokens.len() > self.ctx() {
            return Err(ModelError::ContextFull {
                tokens: tokens.len(),
                used: self.pos,
                ctx: self.ctx(),
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(GpuError::shape(
                "embedding",
                format!("token id {bad} >= vocab {}", self.cfg.vocab_size),
            )
            .into());
        }
        if !self.pick_plans.contains_key(&need) {
            let plan = self.build_pick(gpu, need)?;
            self.pick_plans.insert(need, plan);
        }
        // The encoder that ends with the pick; `read_pick` adds the copy and submits it.
        let enc = if tokens.len() == 1 {
            self.write_step(gpu, tokens);
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            record(&mut enc, &[&self.decode_plan, &self.pick_plans[&need]]);
            enc
        } else {
            let chunks: Vec<&[u32]> = tokens.chunks(self.max_batch).collect();
            let mut last = None;
            for (i, chunk) in chunks.iter().enumerate() {
                let t = chunk.len();
                if !self.prefill_plans.contains_key(&t) {
                    let plan = self.build_prefill(gpu, t)?;
                    self.prefill_plans.insert(t, plan);
                }
                // Each chunk rewrites ids and step, so it gets its own submission.
                self.write_step(gpu, chunk);
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                record(&mut enc, &[&self.prefill_plans[&t]]);
                if i + 1 < chunks.len() {
                    gpu.queue.submit([enc.finish()]);
                    continue;
                }
                let row = (self.cfg.n_embd * 4) as u64;
                enc.copy_buffer_to_buffer(
                    &self.act.x.buffer,
                    row * (t as u64 - 1),
                    &self.act.x_last.buffer,
                    0,
                    row,
                );
                record(&mut enc, &[&self.prefill_head, &self.pick_plans[&need]]);
                last = Some(enc);
            }
            last.ok_or(ModelError::Empty)?
        };
        let out = self.read_pick(gpu, enc, need).await?;
        Ok(out)
    }

    fn write_step(&mut self, gpu: &Gpu, tokens: &[u32]) {
        gpu.queue
            .write_buffer(&self.act.ids.buffer, 0, bytemuck::cast_slice(tokens));
        let step = StepParams::new(self.pos, tokens.len());
        gpu.queue
            .write_buffer(&self.act.step, 0, bytemuck::bytes_of(&step));
        self.pos += tokens.len();
    }

    /// Copy the picked result (or the logits) to a staging buffer in `enc`, submit, and read.
    async fn read_pick(
        &self,
        gpu: &Gpu,
        mut enc: wgpu::CommandEncoder,
        need: LogitsNeed,
    ) -> Result<Logits> {
        let src = match need {
            LogitsNeed::Argmax => view(&self.act.pick, &[1]),
            LogitsNeed::TopK(k) => view(&self.act.pick, &[k, 2]),
            LogitsNeed::Full => self.act.logits.clone(),
        };
        let size = src.nbytes();
        let staging = &self.act.readback;
        enc.copy_buffer_to_buffer(&src.buffer, 0, staging, 0, size);
        gpu.queue.submit([enc.finish()]);
        let (tx, rx) = futures::channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, ..size, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        gpu.wait()?;
        rx.await
            .map_err(|_| GpuError::Readback("map callback dropped".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let words: Vec<u32> = {
            let bytes = staging
                .get_mapped_range(..size)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&bytes)
        };
        staging.unmap();
        gpu.check("forward")?;
        Ok(match need {
            LogitsNeed::Argmax => Logits::Argmax(words[0]),
            LogitsNeed::TopK(_) => Logits::TopK(TopK::unpack(&words)),
            LogitsNeed::Full => Logits::Full(words.iter().map(|w| f32::from_bits(*w)).collect()),
        })
    }
}

fn record(enc: &mut wgpu::CommandEncoder, plans: &[&Vec<Dispatch>]) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("forward"),
        timestamp_writes: None,
    });
    for plan in plans {
        Gpu::record(&mut pass, plan);
    }
}
