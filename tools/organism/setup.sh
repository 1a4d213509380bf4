#!/usr/bin/env bash
# The organism recipe's Python dependencies (torch, transformers, tokenizers, safetensors, numpy):
# the same pinned set as the other tools, installed into <repo>/.venv offline from local wheels.
# On a GPU machine, install that machine's CUDA torch into the venv afterwards; train.py uses it.
set -euo pipefail
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/setup_venv.sh" "$@"
