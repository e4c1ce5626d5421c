// Host memory read bandwidth, for the roofline of llama.cpp's CPU backend.
//
// T worker threads each stream their own slice of one shared buffer with 128-bit WebAssembly
// SIMD loads (4 independent accumulators, XOR so nothing can be skipped); all threads start
// together at a barrier and the rate is total bytes / wall time of the slowest thread. The best
// of several passes is kept, like tokenmill's own GPU bandwidth probe. The wasm module is
// assembled below byte by byte (no compiler, no extra package).
//
// Usage: node host_bandwidth.mjs [--threads 2] [--mib 256] [--passes 5] [--json]
//   --mib is the whole buffer; keep it well above the last-level cache.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";

// (module (import "m" "mem" (memory pages pages shared))
//   (func (export "read") (param $p i32) (param $n i32) (result i32) ...))
// $n is a byte count, a multiple of 64; returns lane 0 of the XOR of everything read.
function wasmModule(pages) {
    const leb = (n) => {
        const out = [];
        do {
            let b = n & 0x7f;
            n >>>= 7;
            if (n !== 0) b |= 0x80;
            out.push(b);
        } while (n !== 0);
        return out;
    };
    const section = (id, body) => [id, ...leb(body.length), ...body];
    const str = (s) => [...leb(s.length), ...Buffer.from(s)];
    const I32 = 0x7f, V128 = 0x7b;
    const type = section(1, [1, 0x60, 2, I32, I32, 1, I32]);
    const imp = section(2, [1, ...str("m"), ...str("mem"), 0x02, 0x03, ...leb(pages), ...leb(pages)]);
    const func = section(3, [1, 0]);
    const exp = section(7, [1, ...str("read"), 0x00, 0]);
    // locals: 2 = end (i32), 3..6 = accumulators (v128)
    const P = 0, N = 1, E = 2;
    const load = (acc, off) => [
        0x20, acc, 0x20, P, 0xfd, 0x00, 4, ...leb(off), // local.get acc; local.get p; v128.load align=16 offset
        0xfd, 0x51, 0x21, acc, //                          v128.xor; local.set acc
    ];
    const code = [
        2, 1, I32, 4, V128,
        0x20, P, 0x20, N, 0x6a, 0x21, E, //                 end = p + n
        0x02, 0x40, 0x03, 0x40, //                          block loop
        ...load(3, 0), ...load(4, 16), ...load(5, 32), ...load(6, 48),
        0x20, P, 0x41, 0xc0, 0x00, 0x6a, 0x22, P, //        p += 64 (local.tee)
        0x20, E, 0x49, 0x0d, 0, //                          br_if loop (p < end)
        0x0b, 0x0b,
        0x20, 3, 0x20, 4, 0xfd, 0x51, 0x20, 5, 0xfd, 0x51, 0x20, 6, 0xfd, 0x51,
        0xfd, 0x1b, 0, //                                   i32x4.extract_lane 0
        0x0b,
    ];
    const body = [...leb(code.length), ...code];
    const codeSec = section(10, [1, ...body]);
    return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...imp, ...func, ...exp, ...codeSec]);
}

async function worker() {
    const { memory, bytes, index, passes, sync } = workerData;
    const { instance } = await WebAssembly.instantiate(wasmModule(memory.buffer.byteLength / 65536), { m: { mem: memory } });
    const read = instance.exports.read;
    const flags = new Int32Array(sync);
    const start = index * bytes;
    let sink = 0;
    sink ^= read(start, bytes); // touch once (page faults, warm TLB)
    for (let pass = 0; pass < passes; pass++) {
        // barrier: count in, wait for the main thread's go (flags[1] = pass + 1)
        Atomics.add(flags, 0, 1);
        Atomics.notify(flags, 0);
        Atomics.wait(flags, 1, pass);
        const t0 = performance.now();
        sink ^= read(start, bytes);
        parentPort.postMessage({ pass, secs: (performance.now() - t0) / 1e3 });
    }
    parentPort.postMessage({ done: true, sink });
}

export async function measureHostReadBandwidth({ threads = 2, mib = 256, passes = 5 } = {}) {
    const per = Math.floor((mib << 20) / threads / 64) * 64;
    const pages = Math.ceil((per * threads) / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    new Uint32Array(memory.buffer).fill(0x9e3779b9);
    const sync = new SharedArrayBuffer(8);
    const flags = new Int32Array(sync);
    const me = fileURLToPath(import.meta.url);
    const times = Array.from({ length: passes }, () => []);
    const workers = [];
    const finished = [];
    for (let i = 0; i < threads; i++) {
        const w = new Worker(me, { workerData: { memory, bytes: per, index: i, passes, sync } });
        workers.push(w);
        finished.push(new Promise((resolve, reject) => {
            w.on("message", (m) => (m.done ? resolve() : times[m.pass].push(m.secs)));
            w.on("error", reject);
        }));
    }
    for (let pass = 0; pass < passes; pass++) {
        while (Atomics.load(flags, 0) < threads * (pass + 1)) await new Promise((r) => setTimeout(r, 1));
        Atomics.store(flags, 1, pass + 1);
        Atomics.notify(flags, 1);
        while (times[pass].length < threads) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(finished);
    const rates = times.map((t) => (per * threads) / Math.max(...t) / 1e9);
    return {
        method: `WebAssembly SIMD 128-bit loads, ${threads} worker thread(s), ${(per * threads) / 2 ** 20} MiB buffer, best of ${passes} passes`,
        threads,
        buffer_bytes: per * threads,
        gb_s: Math.max(...rates),
        passes_gb_s: rates,
    };
}

if (!isMainThread) {
    await worker();
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const arg = (name, dflt) => {
        const i = process.argv.indexOf(name);
        return i >= 0 ? Number(process.argv[i + 1]) : dflt;
    };
    const r = await measureHostReadBandwidth({ threads: arg("--threads", 2), mib: arg("--mib", 256), passes: arg("--passes", 5) });
    if (process.argv.includes("--json")) console.log(JSON.stringify(r));
    else console.log(`${r.gb_s.toFixed(2)} GB/s (${r.method}; passes ${r.passes_gb_s.map((x) => x.toFixed(2)).join(", ")})`);
}
