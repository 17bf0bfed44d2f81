"""Tiny, randomly initialised speech-LLMs of the *exact* transformers classes, built offline.

Nothing is downloaded: the tokenizer is the packaged SmolLM2 one (``harness.lm.converted_checkpoint()``)
plus each family's special audio tokens, the feature extractor is built from its defaults, and the
config's audio token id / vocab size are set from that tokenizer. The result goes through the very same
adapter code (``harness.systems.hf_native``) as the real checkpoint. Each family's tokens and tiny config
are on its entry in ``harness.families`` (``Family.tiny``).
"""
from __future__ import annotations

from functools import lru_cache

import torch

from harness.families import FAMILIES as _ALL

FAMILIES = tuple(name for name, family in _ALL.items() if family.tiny is not None)


@lru_cache(maxsize=None)
def tokenizer(family: str):
    """The packaged SmolLM2 tokenizer + the family's special tokens (exposed as attributes)."""
    from transformers import AutoTokenizer

    from harness.lm import converted_checkpoint

    tokens = _ALL[family].tiny.tokens
    tok = AutoTokenizer.from_pretrained(converted_checkpoint(), extra_special_tokens=dict(tokens))
    for name, text in tokens.items():  # processors also read `<name>_id`
        setattr(tok, name + "_id", tok.convert_tokens_to_ids(text))
    return tok


def build(family: str):
    """(model, processor) for ``family``; model in eval mode, float32, seeded."""
    torch.manual_seed(0)
    tok = tokenizer(family)
    vocab, audio_id = len(tok), tok.audio_token_id
    return _ALL[family].tiny.build(tok, vocab, audio_id)
