//! Prefill matmul: `C[M, N] (+)= A[M, K] · W[N, K]^T` with W in any weight format (F32, F16,
//! Q8_0, Q4_0, Q4_1, GGUF layout), dequantized as its tiles load into workgroup memory.
//!
//! W is a `ChunkedTensor` split by rows (output columns); each chunk is one dispatch whose
//! params carry the chunk's first output column. Tile sizes and the structural variants live in
//! `MatMulTune`, so a tuner can pick them per device.

use crate::gpu::{
    BindingKind, ChunkedTensor, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result,
};
use crate::quant;

const K: &str = "matmul";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    n_off: u32,
    n_rows: u32,
    accumulate: u32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// Entries (vec4<u32>: 4 f32 or 8 f16 along K) per operand tile in the shader (`TILE` there).
const TILE_ENTRIES: u32 = 512;

/// Tile shape and kernel variant. `bm = wg_m * tm` rows and `bn = wg_n * tn` columns of C per
/// workgroup, `bk` values of K per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MatMulTune {
    /// Threads along N; with `subgroup_a`, a multiple of the subgroup size.
    pub wg_n: u32,
    /// Threads along M.
    pub wg_m: u32,
    /// K step: 32 or 64 (one or two quant blocks per row).
    pub bk: u32,
    /// Rows per thread: 4 or 8.
    pub tm: u32,
    /// Columns per thread: 2 or 4.
    pub tn: u32,
    /// Load each A value once per subgroup and broadcast it (needs SUBGROUP, subgroups of at
    /// least `tm` lanes whose size divides `wg_n`, made of consecutive invocations as on every
    /// known driver). Pays off where lane-varying loads are scalarized (CPU adapters).
    pub subgroup_a: bool,
    /// Tiles of f16 (packed in u32 without SHADER_F16): half the workgroup memory and loads.
    pub f16_tiles: bool,
    /// f16 products (4 terms) added into f32 accumulators; needs SHADER_F16 and `f16_tiles`.
    pub f16_math: bool,
}

impl MatMulTune {
    /// For GPUs: 64 x 64 tiles, 4 x 4 per thread, f16 where the device has it.
    pub const GPU: MatMulTune = MatMulTune {
        wg_n: 16,
        wg_m: 16,
        bk: 32,
        tm: 4,
        tn: 4,
        subgroup_a: false,
        f16_tiles: true,
        f16_math: true,
    };

    /// For CPU adapters (lavapipe, SwiftShader): 8-lane subgroups own 8 rows and broadcast A;
    /// 64 x 64 x 64 f16 tiles (every lane-varying load is scalarized there, so fewer and
    /// fuller loads win).
    pub const CPU: MatMulTune = MatMulTune {
        wg_n: 16,
        wg_m: 8,
        bk: 64,
        tm: 8,
        tn: 4,
        subgroup_a: true,
        f16_tiles: true,
        f16_math: false,
    };

    /// Defaults for the device `gpu` (no measurements yet: by adapter kind).
    pub fn for_device(gpu: &Gpu) -> MatMulTune {
        let base = if gpu.desc.software {
            Self::CPU
        } else {
            Self::GPU
        };
        base.fit(gpu)
    }

    pub fn bm(&self) -> u32 {
        self.wg_m * self.tm
    }

    pub fn bn(&self) -> u32 {
        self.wg_n * self.tn
    }

    pub fn threads(&self) -> u32 {
        self.wg_m * self.wg_n
    }

    /// The device's tuned tiles for weights of `dtype` (`tokenmill tune`), else `for_device`.
    pub fn for_dtype(gpu: &Gpu, dtype: DType) -> MatMulTune {
        gpu.tuning()
            .matmul(dtype)
            .filter(|t| t.check(gpu).is_ok())
            .unwrap_or_else(|| Self::for_device(gpu))
    }

    /// This tune with the options the device cannot run switched off.
    pub fn fit(mut self, gpu: &Gpu) -> MatMulTune {
        let caps = &gpu.caps;
        let sg_ok = caps.subgroup
            && caps.subgroup_min_size >= self.tm
            && caps.subgroup_max_size > 0
            && self.wg_n.is_multiple_of(caps.subgroup_max_size);
        self.subgroup_a &= sg_ok;
        self.f16_math &= caps.f16 && self.f16_tiles;
        if self.f16_math {
            // The f16 path reads A rows itself.
            self.subgroup_a = false;
        }
        self
    }

    /// Check sizes against the shader's tile capacity and the device limits.
    pub fn check(&self, gpu: &Gpu) -> Result<()> {
        let bad = |why: String| Err(GpuError::shape(K, format!("tune {self:?}: {why}")));
        if ![4, 8].contains(&self.tm) || ![2, 4].contains(&self.tn) {
            return bad("tm must be 4 or 8 and tn 2 or 4".into());
        }
        if ![32, 64].contains(&self.bk) || self.wg_n == 0 || self.wg_m == 0 {
            return bad("bk must be 32 or 64, wg_n and wg_m positive".into());
        }
        let per_entry = if self.f16_tiles { 8 } else { 4 };
        let entries = self.bk / per_entry;
        if self.bm() * entries > TILE_ENTRIES || self.bn() * entries > TILE_ENTRIES {
            return bad(format!(
                "bm and bn times bk / {per_entry} must be <= {TILE_ENTRIES}"
            ));
        }
        let l = &gpu.caps.limits;
        if self.threads() > l.max_compute_invocations_per_workgroup
            || self.threads() > l.max_compute_workgroup_size_x
        {
            return bad(format!(
                "{} threads exceed the device's workgroup limit",
                self.threads()
            ));
        }
        let shared = 2 * TILE_ENTRIES * 16;
        if shared > l.max_compute_workgroup_storage_size {
            return bad(format!(
                "{shared} bytes of workgroup memory exceed the device's limit"
            ));
        }
        let caps = &gpu.caps;
        if self.subgroup_a
            && (!caps.subgroup
                || caps.subgroup_min_size < self.tm
                || caps.subgroup_max_size == 0
                || !self.wg_n.is_multiple_of(caps.subgroup_max_size))
        {
            return bad("subgroup_a needs subgroups of tm..=wg_n lanes dividing wg_n".into());
        }
        if self.f16_math && (!gpu.caps.f16 || !self.f16_tiles || self.subgroup_a) {
            return bad("f16_math needs SHADER_F16 and f16_tiles, without subgroup_a".into());
        }
        Ok(())
    }
}

/// `C (+)= A · W^T`. Build once with `new`, then `prepare` one set of dispatches per tensor set.
#[derive(Clone, Copy, Debug)]
pub struct MatMul {
    /// Add into C (a fused residual add) instead of overwriting it.
    pub accumulate: bool,
    /// Used as given after `with_tune`; `new` leaves the choice to `prepare`, which takes the
    /// device's tuning for the weight format (`MatMulTune::for_dtype`).
    pub tune: MatMulTune,
    per_dtype: bool,
}

impl MatMul {
    /// Overwriting matmul with the device's default tune.
    pub fn new(gpu: &Gpu) -> MatMul {
        MatMul {
            accumulate: false,
            tune: MatMulTune::for_device(gpu),
            per_dtype: true,
        }
    }

    pub fn accumulate(mut self, on: bool) -> MatMul {
        self.accumulate = on;
        self
    }

    pub fn with_tune(mut self, tune: MatMulTune) -> MatMul {
        self.tune = tune;
        self.per_dtype = false;
        self
    }

    /// Dispatches (one per W chunk) computing `c (+)= a · w^T`.
    /// `a`: [M, K] f32 or f16; `w`: [N, K] in F32/F16/Q8_0/Q4_0/Q4_1; `c`: [M, N] f32 (or f16 on
    /// devices with SHADER_F16).
    pub fn prepare(
        &self,
        gpu: &Gpu,
        a: &GpuTensor,
        w: &ChunkedTensor,
        c: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        let tune = if self.per_dtype {
            MatMulTune::for_dtype(gpu, w.dtype)
        } else {
            self.tune
        };
        tune.check(gpu)?;
        if a.shape.len() != 2 {
            return Err(GpuError::shape(
                K,
                format!("a must be [M, K], got {:?}", a.shape),
            ));
        }
        let (m, k) = (a.shape[0], a.shape[1]);
        let [n, wk] = w.shape;
        a.expect(K, "a", &[m, k], &[DType::F32, DType::F16])?;
        if wk != k {
            return Err(GpuError::shape(
                K,
                format!(
                    "w has shape [{n}, {wk}], expected [N, {k}] (K of a {:?})",
                    a.shape
                ),
            ));
        }
        let w_flag = match w.dtype {
            DType::F32 => "W_F32",
            DType::F16 => "W_F16",
            DType::Q8_0 => "Q8_0",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::U32 => return Err(GpuError::shape(K, "w is u32, expected a weight format")),
        };
        c.expect(K, "c", &[m, n], &[DType::F32, DType::F16])?;
        if c.dtype == DType::F16 && !gpu.caps.f16 {
            return Err(GpuError::MissingFeature {
                kernel: K,
                feature: "SHADER_F16",
                adapter: gpu.desc.name.clone(),
            });
        }
        if m == 0 || n == 0 || k == 0 {
            return Err(GpuError::shape(
                K,
                format!("empty matmul: M = {m}, N = {n}, K = {k}"),
            ));
        }
        if w.dtype.is_quantized() && !k.is_multiple_of(32) {
            return Err(GpuError::shape(
                K,
                format!("K = {k} is not a multiple of 32 for {}", w.dtype.name()),
            ));
        }
        let max_elems = u32::MAX as usize;
        if m * k > max_elems || m * n > max_elems || n * k > max_elems {
            return Err(GpuError::shape(
                K,
                format!("[{m}, {k}] x [{n}, {k}] exceeds u32 indexing"),
            ));
        }

        let mut extra = vec![w_flag];
        if w.grouped() {
            extra.push("GROUPED");
        }
        if !w.dtype.is_quantized() {
            extra.push("PLAIN_W");
        }
        if a.dtype == DType::F16 {
            extra.push("A_F16");
        }
        if c.dtype == DType::F16 {
            extra.push("C_F16");
        }
        // Whole 16-byte vectors per row: f32 rows of K % 4 == 0, f16 rows of K % 8 == 0.
        let vec_rows = |dtype: DType| match dtype {
            DType::F32 => k.is_multiple_of(4),
            DType::F16 => k.is_multiple_of(8),
            _ => false,
        };
        if vec_rows(a.dtype) {
            extra.push("A_VEC");
            if a.dtype == DType::F16 && tune.f16_tiles {
                extra.push("RAW_A");
            }
        }
        if vec_rows(w.dtype) {
            extra.push("W_VEC");
            if w.dtype == DType::F16 && tune.f16_tiles {
                extra.push("RAW_W");
            }
        }
        if tune.tm == 8 {
            extra.push("TM8");
        }
        if tune.tn == 2 {
            extra.push("TN2");
        }
        if tune.subgroup_a {
            extra.push("SG_A");
        }
        if tune.f16_tiles {
            extra.push("TILE_F16");
        }
        if tune.f16_math {
            extra.push("F16_MATH");
        }
        if tune.f16_tiles && gpu.desc.software {
            // CPU adapters emulate pack2x16float at length; integer ops are several times shorter.
            extra.push("SOFT_PACK");
        }
        let mut flags = gpu.flags(&extra);
        if !tune.subgroup_a {
            // Only the SG_A path uses subgroups; keep one pipeline for both device variants.
            flags.remove("SUBGROUP");
        }
        let key = PipelineKey {
            shader: "matmul",
            entry: "main",
            flags,
            overrides: vec![
                ("WG", tune.threads() as i64),
                ("WG_N", tune.wg_n as i64),
                ("WG_M", tune.wg_m as i64),
                ("BK", tune.bk as i64),
            ],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let tiles_m = m.div_ceil(tune.bm() as usize);
        let mut out = Vec::with_capacity(w.chunks.len());
        for (start, rows, chunk) in w.parts() {
            if rows == 0 {
                continue;
            }
            let params = gpu.uniform(
                K,
                &Params {
                    m: m as u32,
                    n: n as u32,
                    k: k as u32,
                    n_off: start as u32,
                    n_rows: rows as u32,
                    accumulate: self.accumulate as u32,
                    _pad: [0; 2],
                },
            );
            let tiles = tiles_m * rows.div_ceil(tune.bn() as usize);
            out.push(
                gpu.dispatch(
                    &kernel,
                    &[
                        params.as_entire_binding(),
                        a.binding(),
                        chunk.binding(),
                        c.binding(),
                    ],
                    gpu.grid(tiles as u32),
                )?
                .with_flops(2 * (m * rows * k) as u64),
            );
        }
        Ok(out)
    }
}

/// CPU reference: W (`n` rows of `k` values in `w_dtype`'s bytes) dequantized with `quant`, then
/// f64 dot products; `c` (if given) is added, as the accumulate mode does.
pub fn reference(
    a: &[f32],
    m: usize,
    k: usize,
    w_dtype: DType,
    w_bytes: &[u8],
    n: usize,
    c: Option<&[f32]>,
) -> Vec<f32> {
    let w = quant::dequantize(w_dtype, w_bytes);
    assert_eq!(a.len(), m * k, "a is not [{m}, {k}]");
    assert_eq!(w.len(), n * k, "w is not [{n}, {k}]");
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let dot: f64 = ar.iter().zip(wr).map(|(&x, &y)| x as f64 * y as f64).sum();
            let base = c.map_or(0.0, |c| c[i * n + j] as f64);
            out[i * n + j] = (base + dot) as f32;
        }
    }
    out
}
