// Numerically stable softmax over rows: out = exp(s*x - max) / sum(exp(s*x - max)), s a scale
// (1 / temperature). One workgroup per row. A row that is entirely -inf gives zeros.
// Bindings: 0 params (uniform), 1 x (read), 2 out (read_write).

struct Params {
    rows: u32,
    n: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Invocations per workgroup: a power of two <= MAX_WG.
override WG: u32 = 256u;
const MAX_WG: u32 = 256u;
// Most negative finite f32: the starting maximum (WGSL has no -inf literal).
const LOWEST: f32 = -3.40282347e38;

var<workgroup> red: array<f32, MAX_WG>;
var<private> lid: u32;
var<private> sg_id: u32;
var<private> sg_lane: u32;
var<private> n_sg: u32;

// Max of `v` over the workgroup, returned to every invocation (call in uniform control flow).
fn wg_max(v: f32) -> f32 {
#if SUBGROUP
    let s = subgroupMax(v);
    if sg_lane == 0u {
        red[sg_id] = s;
    }
    workgroupBarrier();
    var t = red[0];
    for (var i = 1u; i < n_sg; i++) {
        t = max(t, red[i]);
    }
#else
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let t = red[0];
#endif
    // Nobody may overwrite `red` before every invocation has read it.
    workgroupBarrier();
    return t;
}

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
    workgroupBarrier();
    return t;
}

@compute @workgroup_size(WG)
fn softmax(
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
    let base = row * p.n;
    var m = LOWEST;
    for (var i = lid; i < p.n; i += WG) {
        m = max(m, x[base + i] * p.scale);
    }
    m = wg_max(m);
    var sum = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        sum += exp(x[base + i] * p.scale - m);
    }
    sum = wg_sum(sum);
    // The largest entry adds exp(0) = 1, so sum is 0 only when the row is all -inf.
    let inv = select(0.0, 1.0 / sum, sum > 0.0);
    for (var i = lid; i < p.n; i += WG) {
        out[base + i] = exp(x[base + i] * p.scale - m) * inv;
    }
}
