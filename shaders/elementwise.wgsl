// Elementwise f32 kernels.
// Bindings: 0 params (uniform), 1 a (read), 2 b (read; unused by unary ops), 3 out (read_write).

struct Params {
    n: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return linear_group(wid, nwg) * WG + lid.x;
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

// tanh approximation of GELU, as GPT-2 / Gemma use.
fn gelu(x: f32) -> f32 {
    let c = 0.7978845608028654; // sqrt(2 / pi)
    let u = c * (x + 0.044715 * x * x * x);
    // tanh(u) = 1 - 2 / (exp(2u) + 1), clamped so exp cannot overflow.
    let t = 1.0 - 2.0 / (exp(2.0 * clamp(u, -15.0, 15.0)) + 1.0);
    return 0.5 * x * (1.0 + t);
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = a[i] + b[i]; }
}

@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = a[i] * b[i]; }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = a[i] * p.scale; }
}

@compute @workgroup_size(WG)
fn silu_op(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = silu(a[i]); }
}

@compute @workgroup_size(WG)
fn gelu_op(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = gelu(a[i]); }
}

// SwiGLU gate: out = silu(a) * b.
@compute @workgroup_size(WG)
fn silu_mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = silu(a[i]) * b[i]; }
}

// SwiGLU over interleaved pairs: out[i] = silu(a[2i]) * a[2i + 1].
@compute @workgroup_size(WG)
fn silu_mul_pairs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i < p.n { out[i] = silu(a[2u * i]) * a[2u * i + 1u]; }
}
