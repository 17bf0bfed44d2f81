"""Ultravox, implemented here for the transformers we pin: no remote code.

Written from the architecture (fixie-ai/ultravox's ``ultravox_model.py``, MIT, and vLLM's native port, both read,
neither copied); ``tests/test_parity_ultravox.py`` checks it against logits recorded from the upstream code.

* **audio tower** — Whisper's encoder (transformers' ``WhisperEncoder`` modules) run on *unpadded* features: fewer
  than 3000 frames are allowed (the position table is sliced), and keys past each chunk's ``audio_lens`` are
  masked. That is what upstream's ``ModifiedWhisperEncoder`` changes; the layers are transformers' own.
* **projector** — every ``stack_factor`` encoder frames concatenated (zero-padded at the end), RMSNorm, linear,
  SwiGLU (first half × SiLU(second half)) or another activation, RMSNorm after the activation (v0.5+,
  ``projector_ln_mid``) or after the last linear (v0.4.1 and earlier), linear.
* **merge** — the prompt's token embeddings with rows ``start .. start + audio_token_len`` of each audio chunk
  overwritten by that chunk's first ``audio_token_len`` projected frames; the language model (any transformers
  causal LM) is then called normally on ``inputs_embeds``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class UltravoxConfigError(ValueError):
    """``config.json`` asks for something this implementation does not do (it says what and where)."""


@dataclass(frozen=True)
class UltravoxArch:
    """The parts of an Ultravox ``config.json`` that shape the model."""

    audio_config: Any                      # transformers.WhisperConfig
    text_config: Any | None                # absent when the release names its LLM by ``text_model_id`` only
    text_model_id: str | None
    audio_model_id: str | None
    stack_factor: int = 8
    projector_hidden: int = 4096           # config ``hidden_size``: the projector's inner width
    projector_act: str = "swiglu"
    projector_ln_mid: bool = False
    text_lora: dict = field(default_factory=dict)
    audio_lora: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "config.json") -> "UltravoxArch":
        from transformers import CONFIG_MAPPING, WhisperConfig

        if cfg.get("model_type") != "ultravox":
            raise UltravoxConfigError(f"{where}: model_type is {cfg.get('model_type')!r}, not 'ultravox'")
        audio = cfg.get("audio_config")
        if audio is None:
            raise UltravoxConfigError(
                f"{where}: no audio_config (only audio_model_id={cfg.get('audio_model_id')!r}); the encoder's shape "
                "would come from an unpinned repo. Releases since v0.4 carry it inline")
        if audio.get("model_type", "whisper") != "whisper":
            raise UltravoxConfigError(f"{where}: audio tower {audio.get('model_type')!r} is not implemented "
                                      "(only Whisper encoders, as every Ultravox release since v0.2 uses)")
        if cfg.get("audio_latency_block_size") not in (None, 0):
            raise UltravoxConfigError(f"{where}: audio_latency_block_size={cfg['audio_latency_block_size']} "
                                      "(the streaming mask) is not implemented")
        text = cfg.get("text_config")
        if text is not None:
            text = CONFIG_MAPPING[text.get("model_type", "llama")](**text)
        return cls(audio_config=WhisperConfig(**audio), text_config=text, text_model_id=cfg.get("text_model_id"),
                   audio_model_id=cfg.get("audio_model_id"), stack_factor=int(cfg.get("stack_factor", 8)),
                   projector_hidden=int(cfg.get("hidden_size", 4096)),
                   projector_act=cfg.get("projector_act", "swiglu"),
                   projector_ln_mid=bool(cfg.get("projector_ln_mid", False)),
                   text_lora=dict(cfg.get("text_model_lora_config") or {}),
                   audio_lora=dict(cfg.get("audio_model_lora_config") or {}))

    @property
    def encoder_downsampling(self) -> int:
        """Feature frames per encoder frame (Whisper: conv2 has stride 2)."""
        return 2

    @property
    def audio_context_frames(self) -> int:
        """Feature frames one chunk may hold: the encoder's position table × its downsampling (Whisper: 3000)."""
        return int(self.audio_config.max_source_positions) * self.encoder_downsampling


# -- audio tower ---------------------------------------------------------------------------------------------
def _whisper_encoder_class():
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    class UltravoxAudioTower(WhisperEncoder):
        """transformers' Whisper encoder, run on unpadded features with a key mask from ``audio_len``."""

        def forward(self, input_features: torch.Tensor, audio_len: torch.Tensor | None = None):
            limit = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
            if input_features.shape[-1] > limit:
                raise ValueError(f"audio chunk of {input_features.shape[-1]} feature frames; the encoder takes at "
                                 f"most {limit} (the processor splits longer audio)")
            x = F.gelu(self.conv1(input_features))
            x = F.gelu(self.conv2(x)).permute(0, 2, 1)
            hidden = x + self.embed_positions.weight[: x.shape[1]]
            mask = None
            if audio_len is not None:
                frames = (audio_len - 1) // 2 + 1            # conv2 (stride 2, padding 1) output lengths
                keep = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frames.view(-1, 1)
                mask = torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device)
                mask = mask.masked_fill(~keep, torch.finfo(hidden.dtype).min)[:, None, None, :]
            for layer in self.layers:
                out = layer(hidden, mask)
                hidden = out[0] if isinstance(out, tuple) else out
            return self.layer_norm(hidden)

    return UltravoxAudioTower


def audio_tower(config) -> nn.Module:
    """An (initialised) Ultravox audio tower for a ``WhisperConfig``; weights come from the checkpoint."""
    return _whisper_encoder_class()(config)


# -- projector -----------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """Llama's RMSNorm (computed in float32), eps 1e-6 as Ultravox uses."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def stack_frames(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[B, T, C] → [B, ceil(T / factor), C * factor]: consecutive frames concatenated, zero-padded at the end."""
    b, t, c = x.shape
    x = F.pad(x, (0, 0, 0, (-t) % factor))
    return x.reshape(b, -1, c * factor)


class UltravoxProjector(nn.Module):
    def __init__(self, arch: UltravoxArch, text_hidden: int):
        super().__init__()
        from transformers.activations import get_activation

        self.stack_factor = arch.stack_factor
        dim_in = arch.audio_config.d_model * arch.stack_factor
        self.swiglu = arch.projector_act == "swiglu"
        dim_mid = arch.projector_hidden // 2 if self.swiglu else arch.projector_hidden
        self.ln_pre = RMSNorm(dim_in)
        self.linear_1 = nn.Linear(dim_in, arch.projector_hidden, bias=False)
        self.act = None if self.swiglu else get_activation(arch.projector_act)
        self.linear_2 = nn.Linear(dim_mid, text_hidden, bias=False)
        self.ln_mid = RMSNorm(dim_mid) if arch.projector_ln_mid else nn.Identity()
        self.ln_post = nn.Identity() if arch.projector_ln_mid else RMSNorm(text_hidden)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = self.linear_1(self.ln_pre(stack_frames(frames, self.stack_factor)))
        if self.swiglu:
            x, gate = h.chunk(2, dim=-1)
            h = F.silu(gate) * x
        else:
            h = self.act(h)
        return self.ln_post(self.linear_2(self.ln_mid(h)))


# -- the model -----------------------------------------------------------------------------------------------
class UltravoxModel(nn.Module):
    """Audio tower + projector + a transformers causal LM; parameter names match the hub checkpoints."""

    def __init__(self, arch: UltravoxArch, language_model: nn.Module):
        super().__init__()
        self.arch = arch
        self.audio_tower = audio_tower(arch.audio_config)
        self.multi_modal_projector = UltravoxProjector(arch, language_model.config.hidden_size)
        self.language_model = language_model

    @property
    def config(self):
        return self.language_model.config

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def audio_embeds(self, audio_values: torch.Tensor, audio_lens: torch.Tensor) -> torch.Tensor:
        """[chunks, ceil(frames / (2·stack)), H]: every chunk through the tower and the projector."""
        tower_dtype = self.audio_tower.conv1.weight.dtype
        frames = self.audio_tower(audio_values.to(tower_dtype), audio_len=audio_lens)
        proj_dtype = self.multi_modal_projector.linear_1.weight.dtype
        return self.multi_modal_projector(frames.to(proj_dtype))

    def merge(self, input_ids: torch.Tensor, audio_values: torch.Tensor | None = None,
              audio_token_start_idx: torch.Tensor | None = None, audio_lens: torch.Tensor | None = None,
              audio_token_len: torch.Tensor | None = None, audio_batch_size: torch.Tensor | None = None,
              inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with each audio chunk written over its ``audio_token_len`` placeholder rows."""
        embeds = self.get_input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds.clone()
        if audio_values is None or len(audio_values) == 0:
            return embeds
        if audio_batch_size is None:
            audio_batch_size = torch.tensor([len(audio_values)])
        n = len(audio_values)
        if not (len(audio_token_start_idx) == len(audio_token_len) == len(audio_lens) == n):
            raise ValueError(f"{n} audio chunks but {len(audio_token_start_idx)} start indices, "
                             f"{len(audio_token_len)} token lengths and {len(audio_lens)} frame lengths")
        if int(torch.as_tensor(audio_batch_size).sum()) != n or len(audio_batch_size) != len(embeds):
            raise ValueError(f"audio_batch_size {torch.as_tensor(audio_batch_size).tolist()} does not assign the "
                             f"{n} audio chunks to the {len(embeds)} prompts")
        audio = self.audio_embeds(audio_values, audio_lens).to(embeds.dtype)
        rows = [b for b, count in enumerate(torch.as_tensor(audio_batch_size).tolist()) for _ in range(count)]
        for chunk, row in enumerate(rows):
            start, length = int(audio_token_start_idx[chunk]), int(audio_token_len[chunk])
            if length > audio.shape[1]:
                raise ValueError(f"audio chunk {chunk}: {length} placeholder tokens but the projector made only "
                                 f"{audio.shape[1]} audio embeddings")
            embeds[row, start:start + length] = audio[chunk, :length]
        return embeds

    def forward(self, input_ids: torch.Tensor, audio_values=None, audio_token_start_idx=None, audio_lens=None,
                audio_token_len=None, audio_batch_size=None, inputs_embeds=None, **kwargs):
        embeds = self.merge(input_ids, audio_values, audio_token_start_idx, audio_lens, audio_token_len,
                            audio_batch_size, inputs_embeds)
        return self.language_model(inputs_embeds=embeds, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, audio_values=None, audio_token_start_idx=None, audio_lens=None,
                 audio_token_len=None, audio_batch_size=None, **kwargs) -> torch.Tensor:
        """The language model's own ``generate`` on the merged embeddings; returns the new tokens only."""
        embeds = self.merge(input_ids, audio_values, audio_token_start_idx, audio_lens, audio_token_len,
                            audio_batch_size)
        return self.language_model.generate(inputs_embeds=embeds, **kwargs)   # embeds only: new tokens only
