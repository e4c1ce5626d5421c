// Reference fixture for tokenmill, made by an independent implementation: llama.cpp's CPU backend
// through node-llama-cpp. Writes tests/fixtures/smollm2_reference.json with, per prompt:
// the prompt text, llama.cpp's token ids for it, a greedy continuation and the top-5 logits at
// every generated position.
//
// Setup (never builds or downloads binaries):
//   cd scripts/reference && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --ignore-scripts
//   node make_fixture.mjs
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaLogLevel, JinjaTemplateChatWrapper } from "node-llama-cpp";
import { Template } from "@huggingface/jinja";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const modelPath = join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
const outPath = join(root, "tests", "fixtures", "smollm2_reference.json");
const N_PREDICT = 32;
const TOP_K = 5;

const RAW_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Water boils at 100 degrees Celsius. In Fahrenheit, that is",
    "Ünïcödé, emoji 🦀 and CJK 日本語: tokenizers must handle   multiple spaces\tand tabs.",
    "<|im_start|>user\nName three primary colors.<|im_end|>\n<|im_start|>assistant\n",
];

const CHAT_PROMPTS = [
    [{ role: "user", content: "What is the tallest mountain in the world?" }],
    [
        { role: "system", content: "You are a concise assistant who answers in one paragraph." },
        { role: "user", content: "Explain why the sky is blue." },
    ],
    [
        { role: "user", content: "Hi! Can you list some fruits?" },
        { role: "assistant", content: "Sure: apples, bananas and cherries." },
        { role: "user", content: "Now write a short poem about one of them." },
    ],
];

function versionOf(pkg) {
    return JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8")).version;
}

function round(x) {
    return Math.round(x * 1e4) / 1e4;
}

// Top-k (id, logit) from a Map, highest first; ties broken by lower id like an argmax scan.
function topK(logits, k) {
    return [...logits.entries()]
        .sort((a, b) => (b[1] - a[1]) || (a[0] - b[0]))
        .slice(0, k);
}

async function greedy(sequence, tokens) {
    await sequence.clearHistory();
    const want = { generateNext: { logits: { filter: { tokens: [], includeTop: TOP_K } } } };
    const generated = [];
    const top = [];
    let input = tokens.map((t, i) => (i === tokens.length - 1 ? [t, want] : t));
    for (let step = 0; step < N_PREDICT; step++) {
        const out = await sequence.controlledEvaluate(input);
        const logits = out[out.length - 1]?.next?.logits;
        if (logits == null) throw new Error(`no logits at step ${step}`);
        const best = topK(logits, TOP_K);
        const next = best[0][0];
        generated.push(next);
        top.push(best.map(([id, logit]) => [id, round(logit)]));
        input = [[next, want]];
    }
    return { generated, top };
}

const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 512, batchSize: 512, sequences: 1, threads: 2 });

const template = model.fileInfo.metadata.tokenizer.chat_template;
const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens;
const bos = vocab[model.tokens.bos];
const eos = vocab[model.tokens.eos];

// Chat text: rendered by llama.cpp's own Jinja engine (native, from the GGUF template), checked
// against @huggingface/jinja and node-llama-cpp's JinjaTemplateChatWrapper.
const nativeJinja = new llama._bindings.AddonJinjaRenderer(template);
const jsJinja = new Template(template);
const wrapper = new JinjaTemplateChatWrapper({ template });

function renderChat(messages) {
    const vars = { messages, add_generation_prompt: true, bos_token: bos, eos_token: eos };
    const native = nativeJinja.render(vars);
    const js = jsJinja.render(vars);
    if (native !== js) throw new Error(`renderers disagree:\n${JSON.stringify(native)}\n${JSON.stringify(js)}`);
    const history = messages.map((m) =>
        m.role === "assistant" ? { type: "model", response: [m.content] } : { type: m.role, text: m.content });
    history.push({ type: "model", response: [] });
    const ctx = wrapper.generateContextState({ chatHistory: history }).contextText;
    const wrapperIds = [...ctx.tokenize(model.tokenizer)];
    return { text: native, wrapperIds };
}

const cases = [];
for (const text of RAW_PROMPTS) cases.push({ kind: "raw", prompt: text });
for (const messages of CHAT_PROMPTS) {
    const { text, wrapperIds } = renderChat(messages);
    cases.push({ kind: "chat", messages, prompt: text, wrapperIds });
}

const sequence = context.getSequence();
const prompts = [];
for (const c of cases) {
    // llama.cpp tokenization with special-token parsing on; BOS is added only if the model asks.
    const ids = [...model.tokenize(c.prompt, true)];
    const addBos = model.fileInfo.metadata.tokenizer.ggml.add_bos_token === true;
    const promptIds = addBos ? [model.tokens.bos, ...ids] : ids;
    if (c.wrapperIds != null && JSON.stringify(c.wrapperIds) !== JSON.stringify(promptIds))
        console.warn(`note: JinjaTemplateChatWrapper tokens differ for ${JSON.stringify(c.prompt)}`);
    const { generated, top } = await greedy(sequence, promptIds);
    const entry = {
        kind: c.kind,
        ...(c.messages != null ? { messages: c.messages, add_generation_prompt: true } : {}),
        prompt: c.prompt,
        prompt_ids: promptIds,
        greedy_ids: generated,
        greedy_text: model.detokenize(generated, true),
        top5: top,
    };
    prompts.push(entry);
    console.log(`${c.kind}: ${promptIds.length} prompt tokens -> ${JSON.stringify(entry.greedy_text)}`);
}

const fixture = {
    model: "SmolLM2-135M-Instruct.Q4_1.gguf",
    generator: {
        "node-llama-cpp": versionOf("node-llama-cpp"),
        "@node-llama-cpp/linux-x64": versionOf("@node-llama-cpp/linux-x64"),
        "@huggingface/jinja": versionOf("@huggingface/jinja"),
        backend: "llama.cpp CPU (no GPU layers)",
    },
    notes: [
        "prompt_ids: llama.cpp tokenize with special tokens parsed; BOS only when add_bos_token is true",
        "chat prompts: GGUF chat_template rendered by llama.cpp's native Jinja engine with " +
            "add_generation_prompt=true and bos_token/eos_token as strings; @huggingface/jinja agrees",
        `greedy_ids: argmax of logits for ${N_PREDICT} steps, end-of-generation tokens do not stop`,
        "top5: [token id, logit] pairs, highest first, at every generated position; logits rounded to 1e-4",
    ],
    bos_id: model.tokens.bos,
    eos_id: model.tokens.eos,
    prompts,
};

mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, serialize(fixture) + "\n");
console.log(`wrote ${outPath}`);

await context.dispose();
await model.dispose();
await llama.dispose();

// Compact JSON: arrays of numbers on one line so the committed fixture stays short.
function serialize(value, indent = "") {
    const inner = indent + "  ";
    if (Array.isArray(value)) {
        if (value.every((v) => typeof v !== "object" || v === null || (Array.isArray(v) && v.every((x) => typeof x !== "object"))))
            return JSON.stringify(value);
        return "[\n" + value.map((v) => inner + serialize(v, inner)).join(",\n") + "\n" + indent + "]";
    }
    if (value !== null && typeof value === "object") {
        const items = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${serialize(v, inner)}`);
        return "{\n" + items.join(",\n") + "\n" + indent + "}";
    }
    return JSON.stringify(value);
}
