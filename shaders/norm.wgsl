// variants: PLAIN RESIDUAL
// RMSNorm over rows: out = h / sqrt(mean(h^2) + eps) * weight, one workgroup per row.
// Bindings: 0 params (uniform), 1 x (read), 2 weight (read), 3 out (read_write),
// RESIDUAL adds 4 residual (read_write): h = residual + x is written back to residual first.
// Without RESIDUAL, h = x.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
#if RESIDUAL
@group(0) @binding(4) var<storage, read_write> residual: array<f32>;
#endif

// Invocations per workgroup: a power of two <= MAX_WG.
override WG: u32 = 256u;
const MAX_WG: u32 = 256u;

var<workgroup> red: array<f32, MAX_WG>;
var<private> lid: u32;
var<private> sg_id: u32;
var<private> sg_lane: u32;
var<private> n_sg: u32;

// Sum of `v` over the workgroup, returned to every invocation (call in uniform control flow).
fn wg_sum(v: f32) -> f32 {
#if SUBGROUP
    let s = subgroupAdd(v);
    if sg_lane == 0u {
        red[sg_id] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < n_sg; i++) {
        t += red[i];
    }
#else
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let t = red[0];
#endif
    // Nobody may overwrite `red` before every invocation has read it.
    workgroupBarrier();
    return t;
}

@compute @workgroup_size(WG)
fn rms_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
#if SUBGROUP
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) nsg: u32,
#endif
) {
    lid = li;
#if SUBGROUP
    sg_id = sid;
    sg_lane = lane;
    n_sg = nsg;
#endif
    let row = linear_group(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.dim;
    var ss = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
#if RESIDUAL
        let h = residual[base + i] + x[base + i];
        residual[base + i] = h;
#else
        let h = x[base + i];
#endif
        ss += h * h;
    }
    let inv = 1.0 / sqrt(wg_sum(ss) / f32(p.dim) + p.eps);
    for (var i = lid; i < p.dim; i += WG) {
        // Each invocation reads back only the residual elements it wrote itself.
#if RESIDUAL
        let h = residual[base + i];
#else
        let h = x[base + i];
#endif
        out[base + i] = h * inv * weight[i];
    }
}
