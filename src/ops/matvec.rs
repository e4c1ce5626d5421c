//! Decode matrix-vector product `y = W x` (or `y += W x`, a fused residual add) with `W` a
//! row-chunked tensor in F32, F16, Q8_0, Q4_0 or Q4_1. Quantized weights are read in GGUF's own
//! byte layout and dequantized in registers; they are never expanded in memory.

use super::rope_kv::RopeKv;
use crate::gpu::{
    BindingKind, ChunkedTensor, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result,
};

const K: &str = "matvec";

/// Weight formats the kernel reads.
pub const MATVEC_DTYPES: &[DType] = &[
    DType::F32,
    DType::F16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
];

/// Launch shape of the matvec kernel, passed as override constants. The defaults live here so
/// an autotuner can later pick values per device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MatVecTune {
    /// Threads per workgroup (a power of two, at most `MAX_WG`).
    pub wg: u32,
    /// Threads that share one group of rows (a power of two dividing `wg`). `wg`: the whole
    /// workgroup strides over a row's blocks (coalesced loads, suits GPUs). 1: every thread
    /// owns its rows and the x loads are the same across threads (suits CPU-backed adapters).
    pub tpr: u32,
    /// Rows of one row group (1..=`MAX_ROWS`); x is loaded once for all of them.
    pub rows: u32,
}

impl MatVecTune {
    pub const MAX_WG: u32 = 256;
    pub const MAX_ROWS: u32 = 64;
    /// Largest `wg * rows` where threads share rows (`tpr > 1`): the size of the shader's
    /// reduction array.
    pub const MAX_SHARED: u32 = 2048;

    /// For hardware GPUs: a workgroup of 64 threads strides over the blocks of 2 rows.
    pub const GPU: MatVecTune = MatVecTune {
        wg: 64,
        tpr: 64,
        rows: 2,
    };

    /// For CPU-backed adapters (lavapipe, SwiftShader): one thread per row group, so each SIMD
    /// lane streams its own rows while x is read once for all lanes; 64 rows a thread spread
    /// the per-block x work over many rows (on lavapipe, 4096x4096 q4_0 ran 2.3x as fast with
    /// 64 rows a thread as with 2, q8_0 1.8x), and 8 threads fill its 8-wide SIMD. The
    /// resulting 512-row workgroups are few and large, which also avoids lavapipe's sizeable
    /// per-workgroup cost.
    pub const SOFTWARE: MatVecTune = MatVecTune {
        wg: 8,
        tpr: 1,
        rows: 64,
    };

    /// The default for `gpu`.
    pub fn for_gpu(gpu: &Gpu) -> Self {
        if gpu.desc.software {
            Self::SOFTWARE
        } else {
            Self::GPU
        }
    }

    /// The untuned shape for a `rows`-row matrix: `for_gpu`, except that on CPU adapters the
    /// rows are spread evenly over about one workgroup per host thread (at most 64 rows a
    /// thread), since a 512-row workgroup can leave a core idle (576 rows: 512 + 64).
    pub fn preset(gpu: &Gpu, rows: usize) -> Self {
        if !gpu.desc.software {
            return Self::GPU;
        }
        let per_thread = rows
            .div_ceil(8 * host_threads())
            .clamp(1, Self::MAX_ROWS as usize);
        MatVecTune {
            rows: per_thread as u32,
            ..Self::SOFTWARE
        }
    }

    /// The device's tuned shape for a `[rows, cols]` weight of `dtype` (`tokenmill tune`), else
    /// `preset`.
    pub fn for_shape(gpu: &Gpu, dtype: DType, rows: usize, cols: usize) -> Self {
        gpu.tuning()
            .matvec(dtype, rows, cols)
            .filter(|t| t.check(gpu).is_ok())
            .unwrap_or_else(|| Self::preset(gpu, rows))
    }

    /// This shape with rows per thread made even (GLU pairs must stay in one thread).
    pub fn even(mut self) -> Self {
        if !self.rows.is_multiple_of(2) {
            // One fewer keeps every limit; a single row becomes a pair.
            self.rows = if self.rows > 1 { self.rows - 1 } else { 2 };
        }
        self
    }

    /// Output rows one workgroup computes.
    pub fn rows_per_workgroup(&self) -> u32 {
        self.wg / self.tpr * self.rows
    }

    /// Whether the shader and `gpu` can run this launch shape.
    pub fn check(&self, gpu: &Gpu) -> Result<()> {
        let max_wg = Self::MAX_WG.min(gpu.caps.limits.max_compute_invocations_per_workgroup);
        let ok = self.wg.is_power_of_two()
            && self.wg <= max_wg
            && self.tpr.is_power_of_two()
            && self.tpr <= self.wg
            && (1..=Self::MAX_ROWS).contains(&self.rows)
            && (self.tpr == 1 || self.wg * self.rows <= Self::MAX_SHARED);
        if ok {
            Ok(())
        } else {
            Err(GpuError::shape(
                K,
                format!(
                    "bad tuning {self:?}: wg a power of two <= {max_wg}, tpr a power of two <= wg, rows in 1..={}, wg * rows <= {} unless tpr is 1",
                    Self::MAX_ROWS,
                    Self::MAX_SHARED
                ),
            ))
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    row_offset: u32,
    units: u32,
    row_words: u32,
    blocks: u32,
    accumulate: u32,
    eps: f32,
    cols4: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];
const NORM_BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadOnly,
];
const ROPE_BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadOnly,
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadWrite,
];

/// What a matvec fuses around `y = W x`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fused<'a> {
    /// `y += W x`: a residual add.
    pub accumulate: bool,
    /// RMSNorm of x (weight f32 `[cols]`, epsilon) applied as x is loaded.
    pub norm: Option<(&'a GpuTensor, f32)>,
    /// W's rows are (gate, up) pairs; `y[r] = silu(gate_r . x) * (up_r . x)`, y has rows / 2.
    pub glu: bool,
    /// W is a packed `[q; k; v]` projection of one decode token: RoPE and the KV store run as
    /// the epilogue (thread-per-row shapes with even rows per thread, with `norm`).
    pub rope_kv: Option<RopeKv<'a>>,
}

impl Fused<'_> {
    /// Whether rows are stored in pairs, which must stay in one thread.
    pub fn pairs(&self) -> bool {
        self.glu || self.rope_kv.is_some()
    }
}

/// Threads a CPU adapter runs shaders on: lavapipe's LP_NUM_THREADS when set, else the host's.
pub fn host_threads() -> usize {
    std::env::var("LP_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// How a row of `cols` columns of `dtype` splits into units (the span one thread handles).
struct Layout {
    flag: &'static str,
    paired: bool,
    /// W is grouped (`ChunkedTensor::grouped`) and read as u64 words: units are addressed by
    /// row group, and `row_words` is unused.
    int64: bool,
    units: u32,
    row_words: u32,
    blocks: u32,
}

/// `grouped`: W is stored in row groups (q4_1 / q8_0 with an even block count on CPU adapters
/// with SHADER_INT64), which the shader reads as u64 words.
fn layout(dtype: DType, cols: usize, grouped: bool) -> Layout {
    let nb = (cols / 32) as u32;
    let int64 = grouped;
    let paired = int64 || (matches!(dtype, DType::Q8_0 | DType::Q4_0) && nb.is_multiple_of(2));
    let (flag, units, row_words) = match dtype {
        DType::F32 => ("F32W", nb, cols as u32),
        DType::F16 => ("F16W", nb, cols as u32 / 2),
        DType::Q4_1 if int64 => ("Q4_1", nb / 2, 0),
        DType::Q4_1 => ("Q4_1", nb, nb * 5),
        DType::Q4_0 if paired => ("Q4_0", nb / 2, nb / 2 * 9),
        DType::Q8_0 if paired => ("Q8_0", nb / 2, nb / 2 * 17),
        DType::Q4_0 => ("Q4_0", nb, 0),
        _ => ("Q8_0", nb, 0),
    };
    Layout {
        flag,
        paired,
        int64,
        units,
        row_words,
        blocks: nb,
    }
}

/// The quantized (or plain) matrix-vector product.
pub struct QMatVec;

impl QMatVec {
    /// Prepare `y = W x` (or `y += W x` when `accumulate`), one dispatch per chunk of `w`, with
    /// this device's launch shape for `w`'s shape (`MatVecTune::for_shape`). `w` is
    /// `[rows, cols]` (cols a multiple of 32), `x` f32 `[cols]`, `y` f32 `[rows]`.
    pub fn prepare(
        gpu: &Gpu,
        w: &ChunkedTensor,
        x: &GpuTensor,
        y: &GpuTensor,
        accumulate: bool,
    ) -> Result<Vec<Dispatch>> {
        let tune = MatVecTune::for_shape(gpu, w.dtype, w.shape[0], w.shape[1]);
        Self::prepare_tuned(gpu, w, x, y, accumulate, tune)
    }

    /// `prepare` with an explicit launch shape.
    pub fn prepare_tuned(
        gpu: &Gpu,
        w: &ChunkedTensor,
        x: &GpuTensor,
        y: &GpuTensor,
        accumulate: bool,
        tune: MatVecTune,
    ) -> Result<Vec<Dispatch>> {
        let fused = Fused {
            accumulate,
            ..Default::default()
        };
        Self::prepare_fused(gpu, w, x, y, fused, tune)
    }

    /// `y = W x` with the fusions in `fused` (see [`Fused`]) and an explicit launch shape.
    pub fn prepare_fused(
        gpu: &Gpu,
        w: &ChunkedTensor,
        x: &GpuTensor,
        y: &GpuTensor,
        fused: Fused<'_>,
        tune: MatVecTune,
    ) -> Result<Vec<Dispatch>> {
        tune.check(gpu)?;
        let [rows, cols] = w.shape;
        if !MATVEC_DTYPES.contains(&w.dtype) {
            return Err(GpuError::shape(
                K,
                format!("W is {}, expected one of {MATVEC_DTYPES:?}", w.dtype.name()),
            ));
        }
        if cols == 0 || !cols.is_multiple_of(32) {
            return Err(GpuError::shape(
                K,
                format!("W has {cols} columns, expected a positive multiple of 32"),
            ));
        }
        x.expect(K, "x", &[cols], &[DType::F32])?;
        let out_rows = if fused.glu { rows / 2 } else { rows };
        y.expect(K, "y", &[out_rows], &[DType::F32])?;
        if fused.glu && (!rows.is_multiple_of(2) || !tune.rows.is_multiple_of(2)) {
            return Err(GpuError::shape(
                K,
                format!(
                    "GLU needs an even row count and rows per thread, got {rows} and {}",
                    tune.rows
                ),
            ));
        }
        if let Some((nw, _)) = fused.norm {
            nw.expect(K, "norm weight", &[cols], &[DType::F32])?;
        }
        let rope = match &fused.rope_kv {
            Some(r) => {
                if tune.tpr != 1
                    || !tune.rows.is_multiple_of(2)
                    || fused.norm.is_none()
                    || fused.glu
                    || fused.accumulate
                    || !rows.is_multiple_of(2)
                {
                    return Err(GpuError::shape(
                        K,
                        format!("the RoPE epilogue needs one thread per row group, even rows per thread, a norm and no GLU or residual; got {tune:?}"),
                    ));
                }
                Some(r.prepare(gpu, K, rows)?)
            }
            None => None,
        };
        let lay = layout(w.dtype, cols, w.grouped());
        let mut extra = vec![lay.flag];
        if lay.paired {
            extra.push("PAIRED");
        }
        if lay.int64 {
            extra.push("INT64");
        }
        if fused.norm.is_some() {
            extra.push("NORM");
        }
        if fused.glu {
            extra.push("GLU");
        }
        if let Some((flags, _)) = &rope {
            extra.extend(flags);
        }
        if tune.tpr == 1 && tune.wg >= 8 && gpu.caps.subgroup && gpu.caps.subgroup_min_size >= 8 {
            extra.push("XBCAST");
        }
        let key = PipelineKey {
            shader: "matvec",
            entry: "matvec",
            flags: gpu.flags(&extra),
            overrides: vec![
                ("WG", tune.wg as i64),
                ("TPR", tune.tpr as i64),
                ("R", tune.rows as i64),
            ],
        };
        let bindings = match (&rope, fused.norm.is_some()) {
            (Some(_), _) => ROPE_BINDINGS,
            (None, true) => NORM_BINDINGS,
            (None, false) => BINDINGS,
        };
        let kernel = gpu.kernel(K, &key, bindings)?;
        let mut out = Vec::with_capacity(w.chunks.len());
        let mut next_row = 0;
        for (start, n, chunk) in w.parts() {
            if start != next_row
                || chunk.shape.len() != 2
                || chunk.shape[0] < n
                || chunk.shape[1] != cols
                || chunk.dtype != w.dtype
            {
                return Err(GpuError::shape(
                    K,
                    format!("chunk at row {start} is {:?} {}, expected {n} rows from {next_row} of {cols} columns {}", chunk.shape, chunk.dtype.name(), w.dtype.name()),
                ));
            }
            if fused.pairs() && !start.is_multiple_of(2) {
                return Err(GpuError::shape(
                    K,
                    format!("row pairs: chunk starts at odd row {start}"),
                ));
            }
            next_row += n;
            if n == 0 {
                continue;
            }
            if chunk.nbytes() > u32::MAX as u64 {
                return Err(GpuError::TooLarge {
                    kernel: K,
                    bytes: chunk.nbytes(),
                    limit_name: "u32 byte offsets of one chunk",
                    limit: u32::MAX as u64,
                });
            }
            let params = Params {
                rows: n as u32,
                row_offset: start as u32,
                units: lay.units,
                row_words: lay.row_words,
                blocks: lay.blocks,
                accumulate: fused.accumulate as u32,
                eps: fused.norm.map_or(0.0, |(_, e)| e),
                cols4: (cols / 4) as u32,
            };
            let ubuf = gpu.uniform(K, &params);
            let groups = (n as u32).div_ceil(tune.rows_per_workgroup());
            let mut b = vec![
                ubuf.as_entire_binding(),
                chunk.binding(),
                x.binding(),
                y.binding(),
            ];
            if let Some((nw, _)) = fused.norm {
                b.push(nw.binding());
            }
            if let (Some((_, ubuf)), Some(r)) = (&rope, &fused.rope_kv) {
                b.push(ubuf.as_entire_binding());
                b.extend(r.bindings());
            }
            out.push(gpu.dispatch(&kernel, &b, gpu.grid(groups))?);
        }
        if next_row != rows {
            return Err(GpuError::shape(
                K,
                format!("chunks cover {next_row} rows of {rows}"),
            ));
        }
        Ok(out)
    }

    /// CPU reference of a fused matvec: RMSNorm of x first when `norm` is given, then `W x`,
    /// then GLU pairs when `glu`, then `+ y0` when given.
    pub fn reference_fused(
        dtype: DType,
        w: &[u8],
        cols: usize,
        x: &[f32],
        norm: Option<(&[f32], f32)>,
        glu: bool,
        y0: Option<&[f32]>,
    ) -> Vec<f32> {
        let xn: Vec<f32> = match norm {
            Some((nw, eps)) => {
                let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
                let inv = 1.0 / (ss / cols as f64 + eps as f64).sqrt();
                x.iter()
                    .zip(nw)
                    .map(|(&v, &g)| (v as f64 * inv * g as f64) as f32)
                    .collect()
            }
            None => x.to_vec(),
        };
        let plain = Self::reference(dtype, w, cols, &xn, None);
        let out: Vec<f32> = if glu {
            plain
                .chunks(2)
                .map(|p| {
                    let (g, u) = (p[0] as f64, p[1] as f64);
                    (g / (1.0 + (-g).exp()) * u) as f32
                })
                .collect()
        } else {
            plain
        };
        match y0 {
            Some(y0) => out.iter().zip(y0).map(|(a, b)| a + b).collect(),
            None => out,
        }
    }

    /// CPU reference: dequantize `w` (`[rows, cols]` bytes of `dtype`), then dot in f64; adds
    /// `y0` when given (the accumulate mode).
    pub fn reference(
        dtype: DType,
        w: &[u8],
        cols: usize,
        x: &[f32],
        y0: Option<&[f32]>,
    ) -> Vec<f32> {
        let wf = crate::quant::dequantize(dtype, w);
        wf.chunks(cols)
            .enumerate()
            .map(|(r, row)| {
                let dot: f64 = row.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
                (dot + y0.map_or(0.0, |y| y[r] as f64)) as f32
            })
            .collect()
    }
}
