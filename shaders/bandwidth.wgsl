// Read-bandwidth probe: every thread reads vec4<u32>s strided by the total thread count (so a
// workgroup's loads are contiguous) and the workgroup writes one sum, so no read is dead.
// Bindings: 0 params (uniform), 1 src (read), 2 out (read_write, one word per workgroup).

struct Params {
    n: u32,      // vec4s in src
    stride: u32, // threads launched
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

override WG: u32 = 256u;

var<workgroup> red: array<u32, 256>;

@compute @workgroup_size(WG)
fn read_probe(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let group = linear_group(wid, nwg);
    let s = p.stride;
    var i = group * WG + t;
    // Four independent sums keep several loads in flight.
    var a0 = vec4<u32>(0u);
    var a1 = vec4<u32>(0u);
    var a2 = vec4<u32>(0u);
    var a3 = vec4<u32>(0u);
    while i + 3u * s < p.n {
        a0 += src[i];
        a1 += src[i + s];
        a2 += src[i + 2u * s];
        a3 += src[i + 3u * s];
        i += 4u * s;
    }
    while i < p.n {
        a0 += src[i];
        i += s;
    }
    let a = a0 + a1 + a2 + a3;
    red[t] = a.x + a.y + a.z + a.w;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if t < k {
            red[t] += red[t + k];
        }
        workgroupBarrier();
    }
    if t == 0u {
        out[group] = red[0];
    }
}
