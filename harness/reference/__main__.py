"""``python -m harness.reference tune-backbone``: rebuild the committed reference weights from scratch."""
from __future__ import annotations

import argparse
import json
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.reference")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tune-backbone", help="LoRA-tune the packaged SmolLM2 on the tasks' training splits")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.command == "tune-backbone":
        from harness.reference.backbone import train

        print(json.dumps(train(progress=lambda m: print(m, flush=True)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
