#!/usr/bin/env bash
# Create <repo>/.venv with the pinned dev-only Python tooling (tools/requirements.txt).
# Offline by default: pip never touches an index (--no-index) and resolves only from local wheel dirs.
#   tools/setup_venv.sh                      # uses /opt/wheels and /opt/pypi/files
#   WHEEL_DIRS="/a /b" tools/setup_venv.sh   # other local wheel directories
#   ONLINE=1 tools/setup_venv.sh             # allow pip's configured index (torch CPU wheels need
#                                            # --extra-index-url https://download.pytorch.org/whl/cpu)
#   RECREATE=1 tools/setup_venv.sh           # delete and rebuild .venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
WHEEL_DIRS="${WHEEL_DIRS:-/opt/wheels /opt/pypi/files}"

if [[ "${RECREATE:-0}" == "1" && -d "$VENV" ]]; then
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi

args=(install --disable-pip-version-check --no-input)
if [[ "${ONLINE:-0}" != "1" ]]; then
  args+=(--no-index)
fi
for d in $WHEEL_DIRS; do
  if [[ -d "$d" ]]; then
    args+=(--find-links "$d")
  else
    echo "setup_venv: note: wheel dir $d does not exist, skipping" >&2
  fi
done
args+=(-r "$ROOT/tools/requirements.txt")

"$VENV/bin/python" -m pip "${args[@]}"
"$VENV/bin/python" - <<'PY'
import jinja2, numpy, safetensors, tokenizers, torch, transformers
print(f"venv ok: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"tokenizers {tokenizers.__version__}, safetensors {safetensors.__version__}, "
      f"numpy {numpy.__version__}, jinja2 {jinja2.__version__}")
PY
