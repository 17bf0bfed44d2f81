"""Ultravox's inputs: Whisper features in ≤ 30 s chunks, and the ``<|audio|>`` placeholder expanded to EOS tokens.

The behaviour of upstream's ``UltravoxProcessor.__call__`` (fixie-ai/ultravox), re-implemented because its
class does not construct under transformers 5 (it declares a ``WhisperProcessor`` where a feature extractor is
now required). The features themselves come from transformers' ``WhisperFeatureExtractor``:

* waveforms shorter than two hops are zero-padded to two hops; features are computed unpadded (``padding=
  "longest"``, padded to a whole hop, no truncation), so a clip gives ``len / hop`` frames, not 3000;
* the frames are cut into chunks of ``audio_context_size`` (the encoder's 3000 for Whisper); every chunk after
  the first is zero-padded to that size; ``audio_lens`` holds each chunk's real frames;
* each chunk takes ``ceil(audio_lens / (2 · stack_factor))`` token positions (``audio_token_len``);
* the rendered prompt (chat template applied, BOS included) is split at the placeholder, the parts tokenized
  without special tokens, and every chunk's positions filled with the tokenizer's EOS id; ``audio_token_start_idx``
  says where each chunk starts. ``tests/test_parity_ultravox.py`` checks every output against upstream's.
"""
from __future__ import annotations

import math

import numpy as np
import torch

PLACEHOLDER = "<|audio|>"


class UltravoxProcessor:
    """``__call__(text=str, audio=1-D array, sampling_rate=16000)`` → the model's keyword arguments (batch of 1)."""

    def __init__(self, feature_extractor, tokenizer, *, stack_factor: int = 8, encoder_ds_factor: int = 2,
                 audio_context_size: int | None = 3000, audio_placeholder: str = PLACEHOLDER):
        if tokenizer.eos_token is None:
            raise ValueError("the Ultravox tokenizer has no EOS token: nothing to stand for the audio positions")
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.stack_factor, self.encoder_ds_factor = int(stack_factor), int(encoder_ds_factor)
        self.audio_context_size = audio_context_size
        self.audio_placeholder = audio_placeholder
        self.audio_token_replacement = tokenizer.eos_token
        self.chat_template = tokenizer.chat_template

    # -- audio -------------------------------------------------------------------------------------------------
    def audio_features(self, audio: np.ndarray, sampling_rate: int) -> dict[str, torch.Tensor]:
        """``audio_values`` [chunks, mels, frames], ``audio_lens`` [chunks], ``audio_token_len`` [chunks]."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"Ultravox takes one mono waveform, got an array of shape {audio.shape}")
        hop = self.feature_extractor.hop_length
        if len(audio) < 2 * hop:
            audio = np.pad(audio, (0, 2 * hop - len(audio)))
        feats = self.feature_extractor([audio], sampling_rate=sampling_rate, padding="longest",
                                       pad_to_multiple_of=hop, truncation=False, return_attention_mask=True,
                                       return_tensors="pt")
        values, total = feats["input_features"][0], int(feats["attention_mask"][0].sum())
        size = self.audio_context_size or values.shape[-1]
        chunks, lens = [], []
        for offset in range(0, total, size):
            chunk = values[:, offset:offset + size]
            if offset > 0 and chunk.shape[-1] < size:
                chunk = torch.nn.functional.pad(chunk, (0, size - chunk.shape[-1]))
            chunks.append(chunk)
            lens.append(min(total - offset, size))
        audio_lens = torch.tensor(lens, dtype=torch.int64)
        per_token = self.encoder_ds_factor * self.stack_factor
        return {"audio_values": torch.stack(chunks), "audio_lens": audio_lens,
                "audio_token_len": torch.tensor([math.ceil(n / per_token) for n in lens], dtype=torch.int32),
                "audio_batch_size": torch.tensor([len(chunks)])}

    # -- text + audio ------------------------------------------------------------------------------------------
    def __call__(self, text: str, audio: np.ndarray, sampling_rate: int = 16000, return_tensors: str = "pt"):
        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        if not isinstance(text, str):
            raise ValueError("Ultravox takes one rendered prompt (a str), not a batch")
        parts = text.split(self.audio_placeholder)
        if len(parts) != 2:
            raise ValueError(f"the prompt holds {len(parts) - 1} audio placeholders {self.audio_placeholder!r}, "
                             "expected exactly 1")
        out = self.audio_features(audio, sampling_rate)
        before, after = (self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in parts)
        fill = self.tokenizer.convert_tokens_to_ids(self.audio_token_replacement)
        ids, starts = list(before), []
        for n in out["audio_token_len"].tolist():
            starts.append(len(ids))
            ids += [fill] * n
        ids += after
        out["audio_token_start_idx"] = torch.tensor(starts, dtype=torch.int64)
        out["input_ids"] = torch.tensor([ids], dtype=torch.int64)
        out["attention_mask"] = torch.ones_like(out["input_ids"])
        return out
