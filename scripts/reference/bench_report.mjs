// Combines the measurements of scripts/bench_vs_llamacpp.sh into one markdown table and one
// JSON file: tokenmill (`tokenmill bench` ledger records), llama.cpp Vulkan and CPU
// (bench_llamacpp.mjs results) and the host read bandwidth (host_bandwidth.mjs).
//
// Roofline: bytes one decode step reads, from the GGUF (see decodeBytes), times decode tok/s,
// over the device's measured read bandwidth: tokenmill's own bandwidth kernel for the Vulkan
// device (both Vulkan engines run on it), host_bandwidth.mjs for llama.cpp's CPU backend.
//
// Usage: node bench_report.mjs --meta FILE --model GGUF [--tokenmill LEDGER] [--vulkan JSON]
//            [--cpu JSON] [--host-bw JSON] [--out JSON]
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { basename, resolve } from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const readJson = (p) => (p && existsSync(p) && readFileSync(p, "utf8").trim() ? JSON.parse(readFileSync(p, "utf8")) : null);

// ggml type -> [elements per block, bytes per block] (ggml.c type_traits).
const GGML = {
    0: ["F32", 1, 4], 1: ["F16", 1, 2], 2: ["Q4_0", 32, 18], 3: ["Q4_1", 32, 20], 6: ["Q5_0", 32, 22],
    7: ["Q5_1", 32, 24], 8: ["Q8_0", 32, 34], 9: ["Q8_1", 32, 36], 10: ["Q2_K", 256, 84],
    11: ["Q3_K", 256, 110], 12: ["Q4_K", 256, 144], 13: ["Q5_K", 256, 176], 14: ["Q6_K", 256, 210],
    15: ["Q8_K", 256, 292], 20: ["IQ4_NL", 32, 18], 23: ["IQ4_XS", 256, 136], 24: ["I8", 1, 1],
    25: ["I16", 1, 2], 26: ["I32", 1, 4], 27: ["I64", 1, 8], 28: ["F64", 1, 8], 30: ["BF16", 1, 2],
};
function typeBytes(type, elements) {
    const t = GGML[type];
    if (!t) throw new Error(`ggml type ${type} not in the size table`);
    return (elements / t[1]) * t[2];
}

// Bytes one decode step reads: every tensor once (all layer weights and norms, output norm, the
// output head: output.weight, or token_embd when the embeddings are tied), one row of token_embd
// for the input embedding, and K and V of every layer at the mean attended length. The decode
// steps sit at positions P..P+G-2 and attend P+1..P+G-1 cache entries, mean P + G/2.
// Activations, logits and the few-kB intermediate buffers are left out.
async function decodeBytes(modelPath, promptTokens, genTokens) {
    const info = await readGgufFileInfo(modelPath, { logWarnings: false });
    const arch = info.metadata.general.architecture;
    const a = info.metadata[arch];
    const nEmbd = Number(a.embedding_length);
    const nLayer = Number(a.block_count);
    const nHead = Number(a.attention.head_count);
    const nKv = Number(a.attention.head_count_kv ?? nHead);
    const headK = Number(a.attention.key_length ?? nEmbd / nHead);
    const headV = Number(a.attention.value_length ?? nEmbd / nHead);
    const tensors = info.fullTensorInfo ?? info.tensorInfo;
    const size = (t) => typeBytes(t.ggmlType, t.dimensions.reduce((p, d) => p * Number(d), 1));
    const embd = tensors.find((t) => t.name === "token_embd.weight");
    const tied = !tensors.some((t) => t.name === "output.weight");
    let weights = 0;
    const parts = { layers: 0, norms_other: 0, head: 0, embedding_row: 0 };
    for (const t of tensors) {
        const b = size(t);
        if (t.name === "token_embd.weight") {
            if (tied) parts.head += b;
        } else if (t.name === "output.weight") parts.head += b;
        else if (t.name.startsWith("blk.")) parts.layers += b;
        else parts.norms_other += b;
    }
    parts.embedding_row = typeBytes(embd.ggmlType, nEmbd);
    weights = parts.layers + parts.norms_other + parts.head + parts.embedding_row;
    const meanLen = promptTokens + genTokens / 2;
    const kvPerElem = (ggmlType) => typeBytes(ggmlType, 32) / 32;
    const kvBytes = (kType, vType) => nLayer * nKv * meanLen * (headK * kvPerElem(kType) + headV * kvPerElem(vType));
    return {
        file: basename(modelPath),
        architecture: arch,
        tied_embeddings: tied,
        head_type: GGML[(tied ? embd : tensors.find((t) => t.name === "output.weight")).ggmlType][0],
        layers: nLayer, n_kv_heads: nKv, head_dim: headK,
        weight_bytes: weights,
        weight_parts: parts,
        mean_attended_tokens: meanLen,
        kvBytes,
    };
}

const fmt = (x, d = 1) => (x == null || !Number.isFinite(x) ? "n/a" : x.toFixed(d));
const spread = (s, d = 1) => (s ? `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})` : "n/a");
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stat = (xs) => (xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs } : null);

const meta = readJson(args.meta) ?? {};
const modelPath = resolve(args.model);
const P = Number(meta.prompt_tokens ?? 128);
const G = Number(meta.gen_tokens ?? 64);
const gguf = await decodeBytes(modelPath, P, G);

// tokenmill: one ledger record per `tokenmill bench --repeats 1` invocation.
const tmRecords = args.tokenmill && existsSync(args.tokenmill)
    ? readFileSync(args.tokenmill, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
    : [];
const vk = readJson(args.vulkan);
const cpu = readJson(args["cpu"]);
const hostBw = readJson(args["host-bw"]);

const F16 = 1, F32 = 0;
const deviceGbS = stat(tmRecords.map((r) => r.results.device_gb_s).filter((x) => x != null));
const rows = [];
if (tmRecords.length) {
    const r0 = tmRecords[0];
    const kvType = r0.features.f16 ? F16 : F32;
    rows.push({
        key: "tokenmill",
        engine: "tokenmill",
        backend: r0.adapter.backend,
        device: r0.adapter.name,
        prefill_tok_s: stat(tmRecords.map((r) => r.results.prefill_tok_s)),
        decode_tok_s: stat(tmRecords.map((r) => r.results.decode_tok_s)),
        kv_type: kvType === F16 ? "f16" : "f32",
        bytes_per_token: gguf.weight_bytes + gguf.kvBytes(kvType, kvType),
        bandwidth_gb_s: deviceGbS?.median ?? null,
        bandwidth_source: "tokenmill read-bandwidth kernel on this adapter (median over the bench invocations)",
        correctness: tmRecords.every((r) => r.correctness.passed) ? `passed: ${r0.correctness.detail}` : tmRecords.map((r) => r.correctness.detail).join("; "),
    });
}
for (const [key, res] of [["llama.cpp-vulkan", vk], ["llama.cpp-cpu", cpu]]) {
    if (!res) continue;
    const isVk = res.backend === "vulkan";
    rows.push({
        key,
        engine: "llama.cpp",
        backend: isVk ? "vulkan" : `cpu, ${res.threads} threads`,
        device: res.device,
        prefill_tok_s: res.prefill_tok_s,
        decode_tok_s: res.decode_tok_s,
        kv_type: [res.kv_cache_type.k, res.kv_cache_type.v].map((t) => GGML[t]?.[0].toLowerCase() ?? t).join("/"),
        bytes_per_token: gguf.weight_bytes + gguf.kvBytes(res.kv_cache_type.k, res.kv_cache_type.v),
        bandwidth_gb_s: isVk ? deviceGbS?.median ?? null : hostBw?.gb_s ?? null,
        bandwidth_source: isVk
            ? "tokenmill read-bandwidth kernel on the same Vulkan adapter"
            : hostBw ? `host: ${hostBw.method}` : "n/a (host bandwidth not measured)",
        gpu_layers: `${res.gpu_layers}/${res.total_layers}`,
    });
}
const tm = rows.find((r) => r.key === "tokenmill");
for (const r of rows) {
    r.achieved_gb_s = r.decode_tok_s ? (r.bytes_per_token * r.decode_tok_s.median) / 1e9 : null;
    r.roofline_fraction = r.achieved_gb_s != null && r.bandwidth_gb_s ? r.achieved_gb_s / r.bandwidth_gb_s : null;
    if (tm && r !== tm) {
        r.tokenmill_prefill_ratio = tm.prefill_tok_s.median / r.prefill_tok_s.median;
        r.tokenmill_decode_ratio = tm.decode_tok_s.median / r.decode_tok_s.median;
    }
}

// Sanity: the greedy continuation of both llama.cpp backends (tokenmill's own gate compares it
// with llama.cpp's CPU fixture).
let agreement = null;
if (vk && cpu) {
    const n = Math.min(vk.greedy_tokens.length, cpu.greedy_tokens.length);
    let first = n;
    for (let i = 0; i < n; i++) if (vk.greedy_tokens[i] !== cpu.greedy_tokens[i]) { first = i; break; }
    agreement = { compared: n, identical_prefix: first, same_prompt_ids: JSON.stringify(vk.prompt_ids) === JSON.stringify(cpu.prompt_ids) };
}

const r0 = tmRecords[0];
const header = [
    `## tokenmill vs llama.cpp — ${gguf.file}, prompt ${P} tokens, decode ${G} tokens (greedy, no EOS stop)`,
    "",
    `- date: ${new Date().toISOString()}; host: ${meta.cpu_model ?? "?"} (${meta.nproc ?? "?"} logical CPUs), ${r0?.host.os_version ?? meta.os ?? ""}`,
    `- Vulkan adapter: ${r0?.adapter.name ?? vk?.device ?? "n/a"}; driver: ${r0 ? `${r0.adapter.driver} — ${r0.adapter.driver_info}` : "n/a"}; type ${r0?.adapter.device_type ?? "?"}; lavapipe: ${meta.lavapipe ? "yes (scripts/lavapipe.sh)" : "no (system Vulkan driver)"}`,
    `- LP_NUM_THREADS=${meta.lp_num_threads ?? "unset"} (both Vulkan engines); llama.cpp CPU threads: ${cpu?.threads ?? "n/a"}`,
    `- tokenmill ${r0?.tokenmill.version ?? "?"} (${r0?.tokenmill.commit ?? "?"}), \`tokenmill bench --repeats 1\` × ${tmRecords.length} invocations (each: correctness gate, bandwidth probe, 1 warm-up run, 1 measured run); f16 ${r0?.features.f16}, subgroups ${r0?.features.subgroups}`,
    `- llama.cpp ${vk?.via.llama_cpp_release?.release ?? cpu?.via.llama_cpp_release?.release ?? "?"} via node-llama-cpp ${vk?.via["node-llama-cpp"] ?? cpu?.via["node-llama-cpp"] ?? "?"} (${[vk?.via.prebuilt, cpu?.via.prebuilt].filter(Boolean).join(", ")}), sequence.evaluate, temperature 0, ${vk?.workload.warmup ?? cpu?.workload.warmup ?? "?"} warm-up run(s) of ${meta.warmup_gen_tokens ?? "?"} decode tokens, ${vk?.workload.repeats ?? cpu?.workload.repeats ?? "?"} measured runs; Vulkan: ${vk ? `ggml device "${vk.device}" (GGML_VK_VISIBLE_DEVICES=${vk.vulkan.visible_devices_env}), ${vk.gpu_layers}/${vk.total_layers} layers offloaded, flash_attn ${vk.flash_attention}` : "not run"}`,
    `- load average (1 min) before/after each engine: ${(meta.loadavg ?? []).map((l) => `${l.at} ${l.load}`).join(", ") || "n/a"}`,
];
const table = [
    "| engine | backend | device | prefill tok/s median (min–max) | decode tok/s median (min–max) | tokenmill ÷ this, prefill | tokenmill ÷ this, decode | MB read / decode token | read GB/s measured | roofline |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.engine} | ${r.backend} | ${r.device} | ${spread(r.prefill_tok_s)} | ${spread(r.decode_tok_s, 2)} | ${r === tm ? "—" : fmt(r.tokenmill_prefill_ratio, 2)} | ${r === tm ? "—" : fmt(r.tokenmill_decode_ratio, 2)} | ${fmt(r.bytes_per_token / 1e6, 1)} (KV ${r.kv_type}) | ${fmt(r.bandwidth_gb_s, 2)} | ${r.roofline_fraction == null ? "n/a" : `${(r.roofline_fraction * 100).toFixed(1)}%`} |`),
];
const notes = [
    "",
    `Bytes per decode token (from the GGUF): weights ${fmt(gguf.weight_bytes / 1e6, 2)} MB = layers ${fmt(gguf.weight_parts.layers / 1e6, 2)} + norms ${fmt(gguf.weight_parts.norms_other / 1e6, 3)} + head ${fmt(gguf.weight_parts.head / 1e6, 2)} (${gguf.tied_embeddings ? `tied token_embd, ${gguf.head_type}` : `output.weight, ${gguf.head_type}`}) + one embedding row ${gguf.weight_parts.embedding_row} B; plus K and V of ${gguf.layers} layers × ${gguf.n_kv_heads} KV heads × ${gguf.head_dim} at the mean attended length ${gguf.mean_attended_tokens} tokens (${fmt(gguf.kvBytes(F16, F16) / 1e6, 2)} MB in f16). Activations and logits not counted.`,
    `Roofline = bytes per token × median decode tok/s ÷ measured read bandwidth. Vulkan rows: tokenmill's read-bandwidth kernel on the adapter (${deviceGbS ? `${fmt(deviceGbS.median, 2)} GB/s, ${fmt(deviceGbS.min, 2)}–${fmt(deviceGbS.max, 2)}` : "n/a"}). CPU row: ${hostBw ? `${hostBw.method}: ${fmt(hostBw.gb_s, 2)} GB/s` : "n/a"}.`,
    `Decode tok/s = (generated − 1) single-token steps ÷ their time (the first token comes from prefill), the same for all engines; prefill tok/s = prompt tokens ÷ time to the first token.`,
    [vk, cpu].some(Boolean) ? `llama.cpp token counts checked on every run: ${G} generated (${G - 1} decode steps), ${P + G - 1} tokens in the context after each; tokenmill bench never stops early (no stop tokens), ${G} generated.` : "",
    vk ? `llama.cpp Vulkan log: ${vk.log_lines.filter((l) => /using device|offloaded|model buffer size/.test(l)).map((l) => l.replace(/^\w+:\s+/, "").replace(/\s+/g, " ").trim()).join("; ")} (the CPU_Mapped buffer is token_embd, kept on the host for the input row lookup; the tied output head is a copy on the device).` : "",
    cpu ? `llama.cpp CPU: ${cpu.threads} threads (node-llama-cpp maxThreads ${cpu.max_threads}), ${cpu.gpu_layers} GPU layers.` : "",
    agreement ? `llama.cpp Vulkan and CPU: same prompt ids ${agreement.same_prompt_ids}; greedy tokens identical for the first ${agreement.identical_prefix} of ${agreement.compared}.` : "",
    tm ? `tokenmill correctness gate: ${tm.correctness}.` : "",
].filter((l) => l !== "");
const markdown = [...header, "", ...table, "", ...notes].join("\n");
console.log(markdown);

if (args.out) {
    const out = {
        generated_at: new Date().toISOString(),
        command: meta.command ?? null,
        machine: {
            cpu_model: meta.cpu_model ?? null, nproc: meta.nproc ?? null, os: r0?.host.os_version ?? null,
            adapter: r0?.adapter ?? null, lavapipe: meta.lavapipe ?? null, lp_num_threads: meta.lp_num_threads ?? null,
            loadavg: meta.loadavg ?? [],
        },
        workload: { model: gguf.file, prompt_tokens: P, gen_tokens: G, decode_steps: G - 1, repeats: meta.repeats ?? null, warmup: meta.warmup ?? null, warmup_gen_tokens: meta.warmup_gen_tokens ?? null },
        bytes_per_token: { weights: gguf.weight_bytes, weight_parts: gguf.weight_parts, kv_f16: gguf.kvBytes(F16, F16), kv_f32: gguf.kvBytes(F32, F32), mean_attended_tokens: gguf.mean_attended_tokens, tied_embeddings: gguf.tied_embeddings },
        device_read_gb_s: deviceGbS,
        host_read_gb_s: hostBw,
        rows,
        llama_cpp_agreement: agreement,
        llama_cpp_details: Object.fromEntries([["vulkan", vk], ["cpu", cpu]].filter(([, v]) => v).map(([k, v]) => [k, {
            device: v.device, vulkan: v.vulkan, gpu_layers: v.gpu_layers, total_layers: v.total_layers, threads: v.threads,
            flash_attention: v.flash_attention, context_size: v.context_size, batch_size: v.batch_size, via: v.via,
            greedy_text: v.greedy_text, greedy_same_every_run: v.greedy_same_every_run, log_lines: v.log_lines,
        }])),
        tokenmill_records: tmRecords,
        markdown,
    };
    writeFileSync(args.out, JSON.stringify(out, null, 2) + "\n");
    console.error(`results written to ${args.out}`);
}
