#!/usr/bin/env bash
# tokenmill vs llama.cpp on the same Vulkan device and the same GGUF: prefill of a 128-token
# prompt and 64 greedy decode tokens (end-of-generation does not stop), warm-up plus N measured
# runs, median and min-max; tokenmill (Vulkan via wgpu), llama.cpp Vulkan and llama.cpp CPU
# (through node-llama-cpp's prebuilt binaries), with ratios and the decode roofline fraction.
# Prints a markdown table and writes the same as JSON (--out).
#
# Usage: scripts/bench_vs_llamacpp.sh [options]
#   --repeats N          measured runs per engine (default 3)
#   --warmup N           llama.cpp warm-up runs (default 1; tokenmill bench always does one)
#   --warmup-gen N       decode tokens in each llama.cpp warm-up run (default 16; the prompt is
#                        always the full one). The warm-up is there to compile pipelines and
#                        fill caches; it is the only part shortened to keep the runtime down.
#   --prompt-tokens N    prompt length (default 128: benches/prompt_128.txt, repeated if longer)
#   --gen-tokens N       generated tokens (default 64)
#   --device NAME        Vulkan adapter whose name contains NAME, for both engines
#                        (default: a discrete, then integrated GPU, else the first Vulkan adapter)
#   --lavapipe           use Mesa's lavapipe (scripts/lavapipe.sh) even if a GPU is present
#   --no-lavapipe        use the system's Vulkan drivers only
#                        (default: lavapipe only when no non-CPU Vulkan adapter is found)
#   --lp-threads N       LP_NUM_THREADS for lavapipe, the same for both Vulkan engines (default 2)
#   --cpu-threads N      threads of llama.cpp's CPU backend and of the host bandwidth probe (default 2)
#   --engines LIST       comma-separated subset of tokenmill,vulkan,cpu (default all three)
#   --model PATH         GGUF file (default models/SmolLM2-135M-Instruct.Q4_1.gguf)
#   --out FILE           JSON results (default target/bench_vs_llamacpp.json)
#   --skip-build         do not run cargo build --release
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ref="$root/scripts/reference"
repeats=3 warmup=1 warmup_gen=16 prompt_tokens=128 gen_tokens=64 device="" lavapipe=auto
lp_threads=2 cpu_threads=2 engines="tokenmill,vulkan,cpu" build=1
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" out="$root/target/bench_vs_llamacpp.json"
cmdline="scripts/bench_vs_llamacpp.sh${*:+ $*}"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --warmup-gen) warmup_gen="$2"; shift 2 ;;
    --prompt-tokens) prompt_tokens="$2"; shift 2 ;;
    --gen-tokens) gen_tokens="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --lavapipe) lavapipe=yes; shift ;;
    --no-lavapipe) lavapipe=no; shift ;;
    --lp-threads) lp_threads="$2"; shift 2 ;;
    --cpu-threads) cpu_threads="$2"; shift 2 ;;
    --engines) engines="$2"; shift 2 ;;
    --model) model="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    --out) out="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    --skip-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
has() { [[ ",$engines," == *",$1,"* ]]; }
log() { echo "== $*" >&2; }
loadavg=()
mark() { loadavg+=("{\"at\":\"$1\",\"load\":$(cut -d' ' -f1 /proc/loadavg)}"); }

command -v node >/dev/null || { echo "node is required (node-llama-cpp and the report)" >&2; exit 1; }
[ -f "$model" ] || { echo "model $model not found (models/fetch.sh fetches the default one)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# node-llama-cpp and its prebuilt CPU and Vulkan binaries, pinned in scripts/reference; never
# built from source, never downloaded at run time.
need_npm=0
for p in node-llama-cpp @node-llama-cpp/linux-x64 @node-llama-cpp/linux-x64-vulkan; do
  [ -f "$ref/node_modules/$p/package.json" ] || need_npm=1
done
if [ "$need_npm" = 1 ]; then
  log "installing node-llama-cpp into scripts/reference (npm, --ignore-scripts)"
  (cd "$ref" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --ignore-scripts --no-audit --no-fund --omit=optional >&2)
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true

if [ "$build" = 1 ]; then
  log "cargo build --release"
  (cd "$root" && cargo build --release --quiet >&2)
fi
tm="${CARGO_TARGET_DIR:-$root/target}/release/tokenmill"
[ -x "$tm" ] || { echo "$tm missing (drop --skip-build)" >&2; exit 1; }

# Vulkan adapters as tokenmill (wgpu) sees them: "index<TAB>device_type<TAB>name" per line.
vulkan_adapters() {
  # shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
  "$tm" devices --json 2>/dev/null | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      for (const a of JSON.parse(s || "[]")) if (a.backend === "vulkan") console.log(`${a.index}\t${a.device_type}\t${a.name}`);
    });'
}
if [ "$lavapipe" = auto ]; then
  if vulkan_adapters | cut -f2 | grep -qvx Cpu; then lavapipe=no; else lavapipe=yes; fi
fi
export LP_NUM_THREADS="$lp_threads"
if [ "$lavapipe" = yes ]; then
  # shellcheck source-path=SCRIPTDIR source=lavapipe.sh
  source "$root/scripts/lavapipe.sh"
  export LP_NUM_THREADS="$lp_threads"
fi

adapters="$(vulkan_adapters)"
[ -n "$adapters" ] || { echo "no Vulkan adapter found (try --lavapipe)" >&2; exit 1; }
if [ -n "$device" ]; then
  pick="$(awk -F'\t' -v want="$device" 'index(tolower($3), tolower(want)) { print; exit }' <<<"$adapters")"
else
  pick="$(awk -F'\t' '$2 == "DiscreteGpu" { print; exit }' <<<"$adapters")"
  [ -n "$pick" ] || pick="$(awk -F'\t' '$2 == "IntegratedGpu" { print; exit }' <<<"$adapters")"
  [ -n "$pick" ] || pick="$(head -n1 <<<"$adapters")"
fi
[ -n "$pick" ] || { printf 'no Vulkan adapter matches "%s"; adapters:\n%s\n' "$device" "$adapters" >&2; exit 1; }
tm_index="$(cut -f1 <<<"$pick")"
adapter_name="$(cut -f3 <<<"$pick")"
log "Vulkan adapter: $adapter_name (tokenmill index $tm_index); lavapipe: $lavapipe; LP_NUM_THREADS=$LP_NUM_THREADS"

prompt_file="$root/benches/prompt_128.txt"
common=(--model "$model" --prompt-file "$prompt_file" --prompt-tokens "$prompt_tokens" --gen-tokens "$gen_tokens"
        --repeats "$repeats" --warmup "$warmup" --warmup-gen "$warmup_gen")

if has tokenmill; then
  # One `tokenmill bench --repeats 1` per measured run: each has its own warm-up run and
  # bandwidth probe, and its ledger record holds that run's prefill and decode rates, so the
  # spread of both comes from the records.
  mark "tokenmill-start"
  for ((i = 1; i <= repeats; i++)); do
    log "tokenmill bench, run $i/$repeats"
    "$tm" bench --model "$model" --devices "$tm_index" --prompt-tokens "$prompt_tokens" \
      --gen-tokens "$gen_tokens" --repeats 1 --ledger "$work/tokenmill.jsonl" >&2
  done
  mark "tokenmill-end"
fi
if has vulkan; then
  log "llama.cpp Vulkan on \"$adapter_name\""
  mark "llama.cpp-vulkan-start"
  (cd "$ref" && node bench_llamacpp.mjs --backend vulkan --device "$adapter_name" --threads "$cpu_threads" \
     "${common[@]}" --out "$work/vulkan.json")
  mark "llama.cpp-vulkan-end"
fi
if has cpu; then
  log "llama.cpp CPU, $cpu_threads threads"
  mark "llama.cpp-cpu-start"
  (cd "$ref" && node bench_llamacpp.mjs --backend cpu --threads "$cpu_threads" "${common[@]}" --out "$work/cpu.json")
  mark "llama.cpp-cpu-end"
  log "host read bandwidth, $cpu_threads threads"
  (cd "$ref" && node host_bandwidth.mjs --threads "$cpu_threads" --json > "$work/host_bw.json")
fi

cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
node -e 'const [cmd, cpu, nproc, lp, lava, P, G, R, W, WG, load] = process.argv.slice(1);
  console.log(JSON.stringify({ command: cmd, cpu_model: cpu, nproc: Number(nproc), lp_num_threads: lp,
    lavapipe: lava === "yes", prompt_tokens: Number(P), gen_tokens: Number(G), repeats: Number(R),
    warmup: Number(W), warmup_gen_tokens: Number(WG), loadavg: JSON.parse(load) }));' \
  "$cmdline" "$cpu_model" "$(nproc)" "$LP_NUM_THREADS" "$lavapipe" "$prompt_tokens" "$gen_tokens" \
  "$repeats" "$warmup" "$warmup_gen" "[$(IFS=,; echo "${loadavg[*]}")]" > "$work/meta.json"

(cd "$ref" && node bench_report.mjs --meta "$work/meta.json" --model "$model" \
   --tokenmill "$work/tokenmill.jsonl" --vulkan "$work/vulkan.json" --cpu "$work/cpu.json" \
   --host-bw "$work/host_bw.json" --out "$out")
