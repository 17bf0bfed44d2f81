"""Mechanistic probes of a SpeechLLM's backbone (claims 2 and 3 of the paper).

- ``lens``      logit lens at the audio positions → per-layer bag-of-tokens precision vs a mismatched control.
- ``implicit``  the "implicit cascade": text read off one layer by the lens, fed to the backbone as transcript.
- ``leace``     concept erasers (text: the word being spoken; acoustic: frame energy; random rank-matched
                control) fitted with concept-erasure and hooked into the decoder, also during generation.

Modules are imported on use (``from harness.probes import lens``): each pulls in torch/sklearn/matplotlib.
"""

__all__ = ["implicit", "leace", "lens"]
