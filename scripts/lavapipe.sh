#!/usr/bin/env bash
# Mesa 25 lavapipe (Vulkan on the CPU) from Debian's bookworm-backports, fetched into a private
# cache folder with a private apt state; the system's apt sources and packages stay untouched.
# Usage: source scripts/lavapipe.sh   (exports VK_ICD_FILENAMES, LD_LIBRARY_PATH, LP_NUM_THREADS)

_tm_lavapipe_fetch() (
  set -euo pipefail
  cache="$1"
  rm -rf "$cache"
  mkdir -p "$cache"/{lists/partial,archives/partial,etc/parts,etc/prefs,debs,root}
  src=$(sed -n -E 's/^URIs: *([^ ]+).*/\1/p; s/^deb +(\[[^]]*\] +)?([^ ]+) +bookworm .*/\2/p' \
        /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -1)
  [ -n "$src" ] || { echo "lavapipe: no Debian source found in /etc/apt" >&2; exit 1; }
  key=/usr/share/keyrings/debian-archive-keyring.gpg
  printf 'deb [signed-by=%s] %s bookworm main\ndeb [signed-by=%s] %s bookworm-backports main\n' \
    "$key" "$src" "$key" "$src" > "$cache/etc/sources.list"
  opts=(-o Dir::State::Lists="$cache/lists" -o Dir::Cache="$cache"
        -o Dir::Etc::SourceList="$cache/etc/sources.list" -o Dir::Etc::SourceParts="$cache/etc/parts"
        -o Dir::Etc::PreferencesParts="$cache/etc/prefs" -o Dir::State::status=/var/lib/dpkg/status)
  apt-get "${opts[@]}" -qq update >&2
  bpo=(mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 libdrm-common)
  deps=(libvulkan1 libllvm15 libz3-4 libedit2 libxml2 libicu72 libffi8 libtinfo6 libzstd1 libelf1
        libexpat1 libsensors5 libwayland-client0 libx11-xcb1 libx11-6 libxcb1 libxau6 libxdmcp6 libbsd0
        libmd0 libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
        libxshmfence1)
  (cd "$cache/debs" && apt-get "${opts[@]}" -qq download "${bpo[@]/%//bookworm-backports}" "${deps[@]}" >&2)
  for d in "$cache"/debs/*.deb; do dpkg -x "$d" "$cache/root"; done
  lib="$cache/root/usr/lib/x86_64-linux-gnu"
  [ -f "$lib/libvulkan_lvp.so" ] || { echo "lavapipe: libvulkan_lvp.so missing after unpack" >&2; exit 1; }
  printf '{"file_format_version":"1.0.1","ICD":{"library_path":"%s","api_version":"1.4.305"}}\n' \
    "$lib/libvulkan_lvp.so" > "$cache/lvp_icd.json"
)

_tm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute, so that the exported paths still hold after a cd.
_tm_cache="$(realpath -m "${TOKENMILL_MESA_DIR:-$_tm_root/.cache/mesa25}")"
if [ ! -f "$_tm_cache/lvp_icd.json" ]; then
  echo "lavapipe: fetching Mesa 25 (bookworm-backports) into $_tm_cache" >&2
  _tm_lavapipe_fetch "$_tm_cache" || return 1 2>/dev/null || exit 1
fi
export VK_ICD_FILENAMES="$_tm_cache/lvp_icd.json"
export VK_DRIVER_FILES="$_tm_cache/lvp_icd.json"
export LD_LIBRARY_PATH="$_tm_cache/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LP_NUM_THREADS="${LP_NUM_THREADS:-$(nproc)}"
