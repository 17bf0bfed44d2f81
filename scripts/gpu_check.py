"""One GPU-box call for the checks only a GPU can show (no hub, no packaged weights needed):
the CUDA adapter tests of every native class, the tiny-Ultravox parity tests, and the tiny-config throughput table.
The packaged backbone cannot travel there, so its tokenizer (the tiny configs' vocabulary) is read from the folder
given as argv[1] (tokenizer files copied out of the converted checkpoint)."""
import sys
from pathlib import Path

import harness.lm as lm

TOKENIZER = Path(sys.argv[1]).resolve()
lm.converted_checkpoint = lambda progress=print: TOKENIZER

import pytest  # noqa: E402

status = pytest.main(["-q", "-p", "no:cacheprovider", "-rs", "tests/test_adapters.py", "tests/test_parity_ultravox.py",
                      "tests/test_parity_native.py", "-k", "cuda or gpu or parity"])
print(f"pytest exit status {status}", flush=True)
from benchmarks import gpu_answers  # noqa: E402

gpu_answers.main()
