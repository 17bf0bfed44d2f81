#!/usr/bin/env bash
# GPU self-check in one call (a GPU box with this repo installed; no hub access needed):
#   1. the parity tests (tiny Ultravox vs upstream's recorded logits, native processors) and the self-cascade
#      tests, on the CPU (the doctor's own tests are CPU-only and run in the default suite);
#   2. the GPU-marked parity test: the tiny Ultravox loaded with device="cuda" matches upstream's logits;
#   3. the doctor on the tiny Ultravox with --device cuda: the audio-position check must pass; the agreement
#      check must FAIL (exit 1: random weights generate no options) — anything else is a bug;
#   4. the doctor on a trained reference model: must pass (exit 0).
# Usage: bash scripts/gpu_selfcheck.sh    (about 3 minutes with empty caches; exit 0 = all as expected)
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
status=0
step() { echo; echo "=== $*"; }

step "parity + self-cascade tests (CPU)"
python -m pytest -q -p no:cacheprovider tests/test_parity_ultravox.py tests/test_parity_native.py \
    tests/test_self_cascade.py || status=1

step "parity on CUDA"
python -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_parity_ultravox.py || status=1
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU here: the CUDA checks above skipped"; status=1
fi

step "doctor ultravox-tiny --device cuda (expect: positions ok, agreement FAILED, exit 1)"
out=$(python -m harness doctor ultravox-tiny --device cuda --task sentiment --items 2 2>&1); rc=$?
echo "$out" | grep -v "Loading weights"
if [ "$rc" -ne 1 ] || ! echo "$out" | grep -q "^   ok: .* audio positions" \
        || ! echo "$out" | grep -q "doctor: FAILED: agreement$"; then
    echo "UNEXPECTED: exit $rc"; status=1
fi

step "doctor ref-cascade (expect: all checks passed, exit 0)"
python -m harness doctor ref-cascade --device cuda --task sentiment --items 2 2>&1 | grep -v "Loading weights"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo
[ "$status" -eq 0 ] && echo "gpu_selfcheck: all passed" || echo "gpu_selfcheck: FAILED (see above)"
exit "$status"
