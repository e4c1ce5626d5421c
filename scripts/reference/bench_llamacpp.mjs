// llama.cpp prefill and decode speed through node-llama-cpp, one backend per process, on the
// workload `tokenmill bench` runs: a prompt of exactly P tokens, then G greedy tokens that do not
// stop at end-of-generation tokens. Used by scripts/bench_vs_llamacpp.sh.
//
// Timing matches tokenmill's Session::generate: prefill = from the call until the first
// generated token is known (prompt evaluation plus sampling it); decode = the G-1 single-token
// evaluations that produce the remaining G-1 tokens, decode tok/s = (G-1) / their time.
// Sampling is llama.cpp's own greedy sampler (temperature 0) inside the sequence evaluate API.
//
// Usage:
//   node bench_llamacpp.mjs --backend vulkan|cpu --model PATH --prompt-file PATH
//       [--prompt-tokens 128] [--gen-tokens 64] [--repeats 3] [--warmup 1] [--warmup-gen 16]
//       [--threads 2] [--device NAME] [--out FILE]
// Warm-up runs evaluate the whole prompt and then --warmup-gen decode tokens (enough to compile
// every pipeline and fill caches); measured runs always generate --gen-tokens.
//   node bench_llamacpp.mjs --list-vulkan   (names of the Vulkan devices ggml can see, by index)
// --device picks the Vulkan device whose name contains NAME (case-insensitive) by setting
// GGML_VK_VISIBLE_DEVICES to its index, which also makes CPU-type devices such as lavapipe
// visible (ggml hides them otherwise). Progress goes to stderr, the JSON result to --out/stdout.
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const here = dirname(fileURLToPath(import.meta.url));
const me = fileURLToPath(import.meta.url);

function parseArgs(argv) {
    const o = {
        backend: "vulkan", model: null, promptFile: null, promptTokens: 128, genTokens: 64,
        repeats: 3, warmup: 1, warmupGen: 16, threads: 2, device: null, out: null, listVulkan: false,
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const v = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        if (a === "--backend") o.backend = v();
        else if (a === "--model") o.model = resolve(v());
        else if (a === "--prompt-file") o.promptFile = resolve(v());
        else if (a === "--prompt-tokens") o.promptTokens = Number(v());
        else if (a === "--gen-tokens") o.genTokens = Number(v());
        else if (a === "--repeats") o.repeats = Number(v());
        else if (a === "--warmup") o.warmup = Number(v());
        else if (a === "--warmup-gen") o.warmupGen = Number(v());
        else if (a === "--threads") o.threads = Number(v());
        else if (a === "--device") o.device = v();
        else if (a === "--out") o.out = resolve(v());
        else if (a === "--list-vulkan") o.listVulkan = true;
        else throw new Error(`unknown argument ${a}`);
    }
    if (!["vulkan", "cpu"].includes(o.backend)) throw new Error("--backend is vulkan or cpu");
    if (o.genTokens < 2 || o.repeats < 1 || o.warmup < 0 || o.warmupGen < 1 || o.threads < 1) throw new Error("bad counts");
    return o;
}

const log = (...a) => console.error("[llama.cpp]", ...a);

async function loadLlama(gpu, threads, logs) {
    return getLlama({
        gpu,
        build: "never",
        usePrebuiltBinaries: true,
        skipDownload: true,
        progressLogs: false,
        maxThreads: threads,
        logLevel: LlamaLogLevel.info,
        logger: (level, message) => logs.push(String(message).trimEnd()),
    });
}

// One process per index (ggml reads GGML_VK_VISIBLE_DEVICES once, when the backend starts);
// stops at the first index ggml rejects.
function vulkanDevices() {
    const found = [];
    for (let i = 0; i < 16; i++) {
        try {
            const out = execFileSync(process.execPath, [me, "--list-vulkan"], {
                env: { ...process.env, GGML_VK_VISIBLE_DEVICES: String(i) },
                stdio: ["ignore", "pipe", "ignore"],
                timeout: 120_000,
            });
            const names = JSON.parse(out.toString().trim().split("\n").pop());
            if (names.length !== 1) break;
            found.push({ index: i, name: names[0] });
        } catch {
            break;
        }
    }
    return found;
}

function versionOf(pkg) {
    try {
        return JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8")).version;
    } catch {
        return null;
    }
}

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function oneRun(sequence, prompt, genTokens) {
    await sequence.clearHistory();
    const tokens = [];
    const t0 = performance.now();
    const it = sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true });
    let tFirst = null;
    try {
        for (let i = 0; i < genTokens; i++) {
            const r = await it.next();
            if (r.done) throw new Error(`generation ended after ${tokens.length} tokens`);
            tokens.push(r.value);
            if (i === 0) tFirst = performance.now();
        }
    } finally {
        await it.return();
    }
    const tEnd = performance.now();
    const prefillSecs = (tFirst - t0) / 1e3;
    const decodeSecs = (tEnd - tFirst) / 1e3;
    return {
        prefill_secs: prefillSecs,
        decode_secs: decodeSecs,
        prefill_tok_s: prompt.length / prefillSecs,
        decode_tok_s: (genTokens - 1) / decodeSecs,
        generated: tokens.length,
        decode_steps: genTokens - 1,
        tokens,
        context_tokens_after: sequence.nextTokenIndex,
    };
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    if (o.listVulkan) {
        const llama = await loadLlama("vulkan", 1, []);
        console.log(JSON.stringify(llama.gpu === "vulkan" ? await llama.getGpuDeviceNames() : []));
        await llama.dispose();
        return;
    }
    if (!o.model || !o.promptFile) throw new Error("--model and --prompt-file are required");

    let vk = null;
    if (o.backend === "vulkan") {
        const devices = vulkanDevices();
        log(`Vulkan devices ggml sees: ${devices.map((d) => `${d.index}: ${d.name}`).join("; ") || "none"}`);
        const want = (o.device ?? "").toLowerCase();
        const pick = devices.find((d) => d.name.toLowerCase().includes(want));
        if (!pick) throw new Error(`no Vulkan device of ggml matches '${o.device ?? ""}'`);
        process.env.GGML_VK_VISIBLE_DEVICES = String(pick.index);
        vk = { devices, picked: pick };
    }

    const logs = [];
    const llama = await loadLlama(o.backend === "vulkan" ? "vulkan" : false, o.threads, logs);
    if (o.backend === "vulkan" && llama.gpu !== "vulkan")
        throw new Error(`node-llama-cpp loaded the '${llama.gpu}' backend, not vulkan`);
    if (o.backend === "cpu" && llama.gpu !== false) throw new Error(`CPU run got gpu '${llama.gpu}'`);
    const gpuNames = llama.gpu ? await llama.getGpuDeviceNames() : [];
    if (o.backend === "vulkan" && (gpuNames.length !== 1 || gpuNames[0] !== vk.picked.name))
        throw new Error(`expected exactly the device '${vk.picked.name}', node-llama-cpp reports ${JSON.stringify(gpuNames)}`);

    const model = await llama.loadModel({ modelPath: o.model, gpuLayers: o.backend === "vulkan" ? "max" : 0 });
    const totalLayers = model.fileInsights.totalLayers;
    if (o.backend === "vulkan" && model.gpuLayers !== totalLayers)
        throw new Error(`only ${model.gpuLayers}/${totalLayers} layers offloaded`);
    const context = await model.createContext({
        contextSize: o.promptTokens + o.genTokens + 8,
        batchSize: Math.max(512, o.promptTokens),
        sequences: 1,
        threads: o.threads,
    });
    const sequence = context.getSequence();
    for (const l of logs.filter((l) => /using device|offloaded|model buffer size|KV buffer size/.test(l))) log(l.trim());
    log(`${o.backend}: gpu layers ${model.gpuLayers}/${totalLayers}, threads ${o.threads} (max ${llama.maxThreads})`);

    // The prompt: benches/prompt_128.txt tokenized by llama.cpp (add_bos_token is false for
    // SmolLM2), repeated to the requested length exactly like tokenmill's bench does.
    const base = [...model.tokenize(readFileSync(o.promptFile, "utf8"), false)];
    const addBos = model.fileInfo.metadata?.tokenizer?.ggml?.add_bos_token === true;
    const baseIds = addBos ? [model.tokens.bos, ...base] : base;
    const prompt = Array.from({ length: o.promptTokens }, (_, i) => baseIds[i % baseIds.length]);
    log(`prompt file tokenizes to ${baseIds.length} tokens; using ${prompt.length}`);

    const runs = [];
    for (let r = 0; r < o.warmup + o.repeats; r++) {
        const gen = r < o.warmup ? Math.min(o.warmupGen, o.genTokens) : o.genTokens;
        const res = await oneRun(sequence, prompt, gen);
        const tag = r < o.warmup ? `warm-up ${r + 1}/${o.warmup}` : `run ${r - o.warmup + 1}/${o.repeats}`;
        log(`${o.backend} ${tag}: prefill ${res.prefill_tok_s.toFixed(2)} tok/s, decode ${res.decode_tok_s.toFixed(2)} tok/s` +
            ` (${res.generated} tokens, ${res.decode_steps} decode steps, ${res.context_tokens_after} in context)`);
        if (res.generated !== gen || res.context_tokens_after !== o.promptTokens + gen - 1)
            throw new Error("token count mismatch");
        if (r >= o.warmup) runs.push(res);
    }
    const threadsUsed = context.currentThreads;
    if (o.backend === "cpu" && threadsUsed !== o.threads)
        throw new Error(`CPU backend ran with ${threadsUsed} threads, wanted ${o.threads}`);
    const sameTokens = runs.every((r) => JSON.stringify(r.tokens) === JSON.stringify(runs[0].tokens));

    const interesting = logs.filter((l) =>
        /ggml_vulkan|using device|offload|model buffer size|KV buffer size|llama_kv_cache: size|n_threads|flash_attn|CPU : |system_info/i.test(l));
    const stat = (k) => {
        const xs = runs.map((r) => r[k]);
        return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs };
    };
    const result = {
        engine: "llama.cpp",
        backend: o.backend,
        via: {
            "node-llama-cpp": versionOf("node-llama-cpp"),
            prebuilt: o.backend === "vulkan" ? `@node-llama-cpp/linux-x64-vulkan ${versionOf("@node-llama-cpp/linux-x64-vulkan")}`
                : `@node-llama-cpp/linux-x64 ${versionOf("@node-llama-cpp/linux-x64")}`,
            llama_cpp_release: llama.llamaCppRelease,
            build_type: llama.buildType,
        },
        device: o.backend === "vulkan" ? gpuNames[0] : "CPU",
        vulkan: vk && { visible_devices_env: process.env.GGML_VK_VISIBLE_DEVICES, devices: vk.devices },
        gpu_layers: model.gpuLayers,
        total_layers: totalLayers,
        threads: threadsUsed,
        max_threads: llama.maxThreads,
        lp_num_threads: process.env.LP_NUM_THREADS ?? null,
        flash_attention: context.flashAttention,
        kv_cache_type: { k: context.kvCacheKeyType, v: context.kvCacheValueType },
        context_size: context.contextSize,
        batch_size: context.batchSize,
        workload: { prompt_tokens: prompt.length, gen_tokens: o.genTokens, decode_steps: o.genTokens - 1, warmup: o.warmup, warmup_gen_tokens: o.warmupGen, repeats: o.repeats },
        prefill_tok_s: stat("prefill_tok_s"),
        decode_tok_s: stat("decode_tok_s"),
        greedy_tokens: runs[0].tokens,
        greedy_text: model.detokenize(runs[0].tokens, true),
        greedy_same_every_run: sameTokens,
        prompt_ids: prompt,
        system_info: llama.systemInfo,
        log_lines: interesting,
    };
    const json = JSON.stringify(result, null, 2);
    if (o.out) writeFileSync(o.out, json + "\n");
    else console.log(json);
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((e) => {
    console.error(`[llama.cpp] error: ${e.message}`);
    process.exit(1);
});
