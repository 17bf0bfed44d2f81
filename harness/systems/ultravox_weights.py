"""Loading an Ultravox release into :class:`~harness.systems.ultravox_model.UltravoxModel`, every weight accounted for.

A release's ``model.safetensors`` holds what training changed: always the projector, the audio tower when it was
fine-tuned (v0.5+), language-model weights when LoRA was merged before upload, and — in unmerged saves — PEFT's
``lora_A``/``lora_B`` pairs. The language model itself is the registry's backbone repo at its pinned revision
(never ``text_model_id`` at its default branch, which is what upstream's remote code loads); ``config.json``'s
``text_model_id`` must name that same repo, so the speech-LLM's LLM *is* the cascade's backbone.

Nothing is dropped silently: a checkpoint key with no home, a projector weight missing, or LoRA pairs without a
rank in the config raise :class:`CheckpointError` naming the keys.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.systems.ultravox_model import UltravoxArch, UltravoxModel
from harness.systems.ultravox_processor import UltravoxProcessor

PARTS = ("audio_tower", "multi_modal_projector", "language_model")
_PEFT_WRAP = re.compile(r"^(audio_tower|language_model)\.base_model\.model\.")
_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
DOWNLOAD = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer*", "special_tokens_map.json",
            "*.jinja", "preprocessor_config.json", "processor_config.json", "generation_config.json"]


class CheckpointError(ValueError):
    """The checkpoint and the architecture disagree (the message names the keys)."""


class BackboneMismatch(ValueError):
    """The release's ``text_model_id`` is not the registry's backbone: the cascade would not be matched."""


@dataclass
class Provenance:
    """What was loaded from where: the doctor prints it, tests check it."""

    checkpoint: str
    backbone: str
    weights: dict = field(default_factory=dict)        # part → number of tensors taken from the checkpoint
    lora_deltas: int = 0
    unpinned: list = field(default_factory=list)       # anything fetched without a pinned revision


# -- reading ---------------------------------------------------------------------------------------------------
def checkpoint_folder(repo: str, revision: str | None) -> Path:
    """A local folder as is; a hub repo's files at ``revision`` (config, weights, tokenizer, feature extractor)."""
    if Path(repo).is_dir():
        return Path(repo)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, revision=revision, allow_patterns=DOWNLOAD))


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the (possibly sharded) safetensors checkpoint in ``folder``."""
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise CheckpointError(f"{folder}: no model.safetensors (or index); Ultravox releases ship safetensors")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(folder / name)))
    return state


def split_lora(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(plain weights with PEFT's wrapper prefixes removed, {module: (A, B)} LoRA pairs)."""
    plain, pairs = {}, {}
    for key, value in state.items():
        key = _PEFT_WRAP.sub(r"\1.", key).replace(".base_layer.", ".")
        m = _LORA.match(key)
        if m:
            pairs.setdefault(m["module"], {})[m["ab"]] = value
        else:
            plain[key] = value
    broken = sorted(k for k, ab in pairs.items() if set(ab) != {"A", "B"})
    if broken:
        raise CheckpointError(f"LoRA weights without their other half: {broken[:5]}")
    return plain, {k: (ab["A"], ab["B"]) for k, ab in pairs.items()}


def lora_scale(config: dict, where: str) -> float:
    """PEFT's scaling ``lora_alpha / r`` from the release's ``*_lora_config``."""
    r = int(config.get("r") or 0)
    if r <= 0:
        raise CheckpointError(f"the checkpoint holds LoRA weights for {where} but its config gives rank r={r}")
    return float(config.get("lora_alpha", 8)) / r


# -- assembling -------------------------------------------------------------------------------------------------
def assemble(arch: UltravoxArch, language_model: torch.nn.Module, state: dict[str, torch.Tensor], *,
             provenance: Provenance, audio_tower_state=None) -> UltravoxModel:
    """The model with every checkpoint tensor in place and LoRA deltas merged (``W += alpha/r · B @ A``).

    ``audio_tower_state``: called for the tower's base weights when the checkpoint has none (older releases)."""
    model = UltravoxModel(arch, language_model)
    own = model.state_dict()
    plain, lora = split_lora(state)
    unexpected = sorted(k for k in plain if k not in own)
    if unexpected:
        raise CheckpointError(f"{len(unexpected)} checkpoint tensors have no place in the model, e.g. {unexpected[:5]}")
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in plain.items() if v.shape != own[k].shape]
    if wrong:
        raise CheckpointError(f"checkpoint tensors of the wrong shape: {wrong[:5]}")
    need_projector = [k for k in own if k.startswith("multi_modal_projector.") and k not in plain]
    if need_projector:
        raise CheckpointError(f"the checkpoint lacks projector weights {need_projector}")
    tower_keys = [k for k in own if k.startswith("audio_tower.")]
    if any(k not in plain for k in tower_keys):
        if audio_tower_state is None:
            raise CheckpointError(f"the checkpoint lacks audio-tower weights (e.g. "
                                  f"{[k for k in tower_keys if k not in plain][:3]}) and names no audio_model_id")
        base = {f"audio_tower.{k}": v for k, v in audio_tower_state().items()}
        plain = {**{k: v for k, v in base.items() if k in own}, **plain}
        missing = [k for k in tower_keys if k not in plain]
        if missing:
            raise CheckpointError(f"audio-tower weights missing from both the checkpoint and its base: {missing[:5]}")
    with torch.no_grad():
        for key, value in plain.items():
            own[key].copy_(value.to(own[key].dtype))
        for module, (a, b) in lora.items():
            part = module.split(".", 1)[0]
            scale = lora_scale(arch.text_lora if part == "language_model" else arch.audio_lora, part)
            target = own.get(f"{module}.weight")
            if target is None:
                raise CheckpointError(f"LoRA weights for {module!r}, which is not a layer of the model")
            delta = (b.float() @ a.float()) * scale
            target.copy_((target.float() + delta.to(target.device)).to(target.dtype))
    provenance.weights = {p: sum(1 for k in state if k.startswith(p + ".")) for p in PARTS}
    provenance.lora_deltas = len(lora)
    return model


def same_backbone(text_model_id: str | None, backbone_repo: str, folder: Path) -> bool:
    """Does the release's ``text_model_id`` name ``backbone_repo``? (Local fixtures: paths relative to the
    checkpoint's parent folder.)"""
    if text_model_id is None:
        return True
    if Path(backbone_repo).is_dir():
        for base in (folder.parent, Path.cwd()):
            if (base / text_model_id).is_dir() and (base / text_model_id).resolve() == Path(backbone_repo).resolve():
                return True
        return False
    return text_model_id == backbone_repo


def processor_for(folder: Path, arch: UltravoxArch, tokenizer) -> UltravoxProcessor:
    """Whisper features as the release's ``preprocessor_config.json`` says (else Whisper's defaults with the
    encoder's mel count); chunk size, stack factor and placeholder from ``processor_config.json`` if present."""
    from transformers import WhisperFeatureExtractor

    if (folder / "preprocessor_config.json").exists():
        fe = WhisperFeatureExtractor.from_pretrained(str(folder))
    else:
        fe = WhisperFeatureExtractor(feature_size=arch.audio_config.num_mel_bins)
    if fe.feature_size != arch.audio_config.num_mel_bins:
        raise CheckpointError(f"{folder}: the feature extractor makes {fe.feature_size} mel bins, the encoder takes "
                              f"{arch.audio_config.num_mel_bins}")
    extra = {}
    if (folder / "processor_config.json").exists():
        cfg = json.loads((folder / "processor_config.json").read_text())
        extra = {k: cfg[k] for k in ("audio_context_size", "audio_placeholder", "encoder_ds_factor") if k in cfg}
        if "stack_factor" in cfg and int(cfg["stack_factor"]) != arch.stack_factor:
            raise CheckpointError(f"{folder}: processor stack_factor {cfg['stack_factor']} != model {arch.stack_factor}")
    extra.setdefault("audio_context_size", arch.audio_context_frames)
    return UltravoxProcessor(fe, tokenizer, stack_factor=arch.stack_factor, **extra)


def load_pretrained(repo: str, revision: str | None, backbone_repo: str, backbone_revision: str | None, *,
                    dtype: torch.dtype = torch.bfloat16, device: str = "cpu"):
    """(UltravoxModel, UltravoxProcessor, Provenance) for a release and the backbone it was trained on."""
    from transformers import AutoModelForCausalLM

    folder = checkpoint_folder(repo, revision)
    arch = UltravoxArch.from_dict(json.loads((folder / "config.json").read_text()), where=f"{repo}/config.json")
    if not same_backbone(arch.text_model_id, backbone_repo, folder):
        raise BackboneMismatch(f"{repo}: config.json's text_model_id is {arch.text_model_id!r}, but the registry's "
                               f"backbone is {backbone_repo!r}; the matched cascade would run a different LLM")
    prov = Provenance(checkpoint=f"{repo}@{revision}", backbone=f"{backbone_repo}@{backbone_revision}")
    device_map = "auto" if device == "cuda" else device
    if arch.text_model_id is None:       # the release carries the whole language model
        if arch.text_config is None:
            raise CheckpointError(f"{repo}: config.json names neither text_model_id nor text_config")
        language_model = AutoModelForCausalLM.from_config(arch.text_config, dtype=dtype).to(device)
    else:
        language_model = AutoModelForCausalLM.from_pretrained(backbone_repo, revision=backbone_revision, dtype=dtype,
                                                              device_map=device_map)
    state = read_state_dict(folder)
    if arch.text_model_id is None:
        own = {f"language_model.{k}" for k in language_model.state_dict()}
        missing = sorted(own - set(split_lora(state)[0]))
        if missing:
            raise CheckpointError(f"{repo}: no text_model_id, yet the checkpoint lacks language-model weights "
                                  f"{missing[:5]}")

    def tower_base():
        from transformers import WhisperForConditionalGeneration

        prov.unpinned.append(f"{arch.audio_model_id} (audio-tower base weights; no revision in config.json)")
        whisper = WhisperForConditionalGeneration.from_pretrained(arch.audio_model_id, dtype=torch.float32)
        return whisper.model.encoder.state_dict()

    model = assemble(arch, language_model, state, provenance=prov,
                     audio_tower_state=tower_base if arch.audio_model_id else None)
    lm_device = next(language_model.parameters()).device
    model.audio_tower.to(lm_device, dtype)
    model.multi_modal_projector.to(lm_device, dtype)
    model.eval()
    return model, processor_for(folder, arch, tokenizer_for(folder)), prov


def tokenizer_for(folder: Path):
    """The release's own tokenizer (its chat template included), by the class its tokenizer_config names:
    ``AutoTokenizer`` would consult config.json, whose ``ultravox`` type transformers does not know."""
    import transformers

    cfg = folder / "tokenizer_config.json"
    name = json.loads(cfg.read_text()).get("tokenizer_class") if cfg.exists() else None
    cls = getattr(transformers, name, None) if name else None
    return (cls or transformers.AutoTokenizer).from_pretrained(str(folder))
