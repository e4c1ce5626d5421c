// variants: STRIDED CONTIG CONTIG+INT64
// Read-bandwidth probe. Each thread sums the elements it reads and the sums are written out
// (one per subgroup with SUBGROUP, else one per workgroup), so no read is dead.
// Bindings: 0 params (uniform), 1 src (read), 2 out (read_write).
// Default: vec4<u32> loads, consecutive threads at consecutive addresses, strided by the thread
// count (coalesced on GPUs). CONTIG: u32 loads, each thread over its own contiguous span (the
// faster pattern for CPU-backed adapters, whose SIMD lanes are threads). CONTIG+INT64: the same
// with vec4<u64> loads (CPU adapters gather per element, so wider elements read faster).

struct Params {
    n: u32,      // elements (vec4s, or words with CONTIG) to read
    stride: u32, // threads launched
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if CONTIG
#if INT64
@group(0) @binding(1) var<storage, read> src: array<vec4<u64>>;
#else
@group(0) @binding(1) var<storage, read> src: array<u32>;
#endif
#else
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
#endif
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

override WG: u32 = 256u;

#if !SUBGROUP
var<workgroup> red: array<u32, 256>;
#endif

fn total(v: vec4<u32>) -> u32 {
    return v.x + v.y + v.z + v.w;
}

@compute @workgroup_size(WG)
fn read_probe(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
#if SUBGROUP
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32,
#endif
) {
    let group = linear_group(wid, nwg);
    let thread = group * WG + t;
#if CONTIG
    let per = p.n / p.stride;
    var i = thread * per;
    let end = i + per;
#if INT64
    // Two vec4<u64> (64 bytes) an iteration, in two independent sums.
    var a = vec4<u64>(0lu);
    var b = vec4<u64>(0lu);
    while i + 2u <= end {
        a += src[i];
        b += src[i + 1u];
        i += 2u;
    }
    while i < end {
        a += src[i];
        i += 1u;
    }
    let s = a + b;
    let v = total(vec4<u32>(s)) + total(vec4<u32>(s >> vec4<u32>(32u)));
#else
    // Sixteen words an iteration, in four independent sums.
    var a = vec4<u32>(0u);
    var b = vec4<u32>(0u);
    while i + 16u <= end {
        a += vec4<u32>(src[i], src[i + 1u], src[i + 2u], src[i + 3u]);
        b += vec4<u32>(src[i + 4u], src[i + 5u], src[i + 6u], src[i + 7u]);
        a += vec4<u32>(src[i + 8u], src[i + 9u], src[i + 10u], src[i + 11u]);
        b += vec4<u32>(src[i + 12u], src[i + 13u], src[i + 14u], src[i + 15u]);
        i += 16u;
    }
    while i < end {
        a.x += src[i];
        i += 1u;
    }
    let v = total(a + b);
#endif
#else
    let s = p.stride;
    var i = thread;
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
    let v = total(a0 + a1 + a2 + a3);
#endif
#if SUBGROUP
    let sum = subgroupAdd(v);
    if sg_lane == 0u {
        out[group * sg_count + sg_id] = sum;
    }
#else
    red[t] = v;
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
#endif
}
