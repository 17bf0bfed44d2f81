"""Whisper WER on real recorded speech, clean and under noise, with and without the run-away guard.

    apt-get download asterisk-core-sounds-en-wav asterisk-core-sounds-en && for f in *.deb; do dpkg -x $f root; done
    python benchmarks/real_speech_wer.py root/usr/share/asterisk/sounds/en_US_f_Allison \
        root/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz --clips 40

The Asterisk prompts (one voice, 8 kHz telephone recordings, CC-BY-SA-3.0) ship with their transcripts. Clips
are the first --clips prompts (by name) whose transcript is plain words (no [tones], digits, or fewer than 4
words). Babble mixes 8 other prompts, as the runner does with a task's training items. Not part of the test run.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.asr import ASR, runaway, word_error_rate  # noqa: E402
from harness.audio import Condition  # noqa: E402
from harness.tasks import load_recording  # noqa: E402

CONDITIONS = ("clean", "babble@10#0", "babble@0#0", "white@10#0", "white@0#0")
BABBLE_POOL = 8


def prompts(sounds: Path, transcripts: Path, n: int) -> list[tuple[Path, str]]:
    opener = gzip.open if transcripts.suffix == ".gz" else open
    with opener(transcripts, "rt", encoding="utf-8", errors="replace") as f:
        lines = [ln.strip() for ln in f if ":" in ln and not ln.startswith(";")]
    out = []
    for line in sorted(lines):
        name, _, text = line.partition(":")
        text, wav = text.strip(), sounds / f"{name.strip()}.wav"
        if wav.is_file() and re.fullmatch(r"[A-Za-z ,.'?!\-]+", text) and len(text.split()) >= 4:
            out.append((wav, text))
    return out[:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sounds", type=Path)
    ap.add_argument("transcripts", type=Path)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None, help="also write per-clip transcripts here")
    args = ap.parse_args(argv)
    clips = prompts(args.sounds, args.transcripts, args.clips)
    audio = [load_recording(p, p.stem) for p, _ in clips]
    refs = [t for _, t in clips]
    asrs = {"before (greedy)": ASR(guard=False), "after (greedy + run-away guard)": ASR(guard=True)}
    rows, dump = [], {}
    for cond_text in CONDITIONS:
        cond = Condition.parse(cond_text)
        noisy = []
        for i, a in enumerate(audio):
            pool = [audio[(i + k) % len(audio)] for k in range(1, BABBLE_POOL + 1)]
            noisy.append(a if cond.kind == "clean" else
                         cond.apply(a, **({"babble_sources": pool} if cond.kind == "babble" else {})))
        for label, asr in asrs.items():
            outs = [asr.transcribe(x) for x in noisy]
            hyps = [o.text for o in outs]
            rows.append((cond_text, label, word_error_rate(refs, hyps), sum(not h.strip() for h in hyps),
                         sum(runaway(h, x.duration) is not None for h, x in zip(hyps, noisy)),
                         sum(o.guard is not None for o in outs), max(len(h.split()) for h in hyps)))
            dump[f"{cond_text} | {label}"] = [{"clip": p.stem, "ref": r, "hyp": o.text, "guard": o.guard}
                                             for (p, r), o in zip(clips, outs)]
    total = sum(a.duration for a in audio)
    print(f"{len(clips)} Asterisk prompts ({total:.0f} s, 8 kHz recordings resampled to 16 kHz), Whisper tiny.en int8\n")
    print("| condition | decoding | WER | empty | run-away | guard re-decoded | longest (words) |")
    print("|---|---|---|---|---|---|---|")
    for cond, label, wer, empty, run, guarded, longest in rows:
        print(f"| {cond} | {label} | {wer:.3f} | {empty} | {run} | {guarded} | {longest} |")
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
