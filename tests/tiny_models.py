"""Tiny, randomly initialised speech-LLMs of the *exact* transformers classes, built offline.

Nothing is downloaded: the tokenizer is the packaged SmolLM2 one (``harness.lm.converted_checkpoint()``)
plus each family's special audio tokens, the feature extractor is built from its defaults, and the
config's audio token id / vocab size are set from that tokenizer. The result goes through the very same
adapter code (``harness.systems.hf_native``) as the real checkpoint. Sizes are chosen to run in
milliseconds; input lengths follow the real configs (30 s Whisper windows, etc.).
"""
from __future__ import annotations

from functools import lru_cache

import torch

FAMILIES = ("qwen2_audio", "voxtral", "granite_speech", "phi4_multimodal", "qwen2_5_omni")

H, LAYERS, HEADS, KV = 32, 2, 4, 2          # text decoder
AH, ALAYERS, AHEADS = 16, 1, 2              # audio encoder

_TOKENS = {  # attribute name on the tokenizer → token text (the processors read these attributes)
    "qwen2_audio": {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"},
    "voxtral": {"audio_token": "[AUDIO]", "begin_audio_token": "[BEGIN_AUDIO]"},
    "granite_speech": {"audio_token": "<|audio|>"},
    "phi4_multimodal": {"audio_token": "<|endoftext11|>", "image_token": "<|endoftext10|>"},
    "qwen2_5_omni": {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                     "audio_eos_token": "<|audio_eos|>", "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                     "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"},
}


@lru_cache(maxsize=None)
def tokenizer(family: str):
    """The packaged SmolLM2 tokenizer + the family's special tokens (exposed as attributes)."""
    from transformers import AutoTokenizer

    from harness.lm import converted_checkpoint

    tok = AutoTokenizer.from_pretrained(converted_checkpoint(), extra_special_tokens=dict(_TOKENS[family]))
    for name, text in _TOKENS[family].items():  # processors also read `<name>_id`
        setattr(tok, name + "_id", tok.convert_tokens_to_ids(text))
    return tok


def _text(vocab: int, **extra) -> dict:
    return dict(vocab_size=vocab, hidden_size=H, intermediate_size=2 * H, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, num_key_value_heads=KV, max_position_embeddings=4096, **extra)


def _whisper_fe(n_mels: int):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels)


def build(family: str):
    """(model, processor) for ``family``; model in eval mode, float32, seeded."""
    torch.manual_seed(0)
    tok = tokenizer(family)
    vocab, audio_id = len(tok), tok.audio_token_id
    return _BUILDERS[family](tok, vocab, audio_id)


def _qwen2_audio(tok, vocab, audio_id):
    from transformers import (Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration,
                              Qwen2AudioProcessor, Qwen2Config)

    cfg = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(num_mel_bins=128, encoder_layers=ALAYERS, encoder_attention_heads=AHEADS,
                                             encoder_ffn_dim=2 * AH, d_model=AH, max_source_positions=1500),
        text_config=Qwen2Config(**_text(vocab)), audio_token_index=audio_id)
    proc = Qwen2AudioProcessor(feature_extractor=_whisper_fe(128), tokenizer=tok, chat_template=tok.chat_template)
    return Qwen2AudioForConditionalGeneration(cfg).eval(), proc


def _voxtral(tok, vocab, audio_id):
    from transformers import LlamaConfig, VoxtralConfig, VoxtralEncoderConfig, VoxtralForConditionalGeneration

    cfg = VoxtralConfig(
        audio_config=VoxtralEncoderConfig(hidden_size=AH, intermediate_size=4 * AH, num_hidden_layers=ALAYERS,
                                          num_attention_heads=AHEADS, num_mel_bins=128),
        text_config=LlamaConfig(**_text(vocab, head_dim=H // HEADS)), audio_token_id=audio_id)
    # VoxtralProcessor needs mistral-common's tokenizer: the adapter builds Voxtral inputs itself.
    return VoxtralForConditionalGeneration(cfg).eval(), _ManualProcessor(_whisper_fe(128), tok)


class _ManualProcessor:
    """Feature extractor + tokenizer pair for families whose processor cannot be built offline."""

    def __init__(self, feature_extractor, tokenizer):
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.chat_template = tokenizer.chat_template


def _granite(tok, vocab, audio_id):
    from transformers import (Blip2QFormerConfig, GraniteConfig, GraniteSpeechConfig, GraniteSpeechEncoderConfig,
                              GraniteSpeechForConditionalGeneration)

    cfg = GraniteSpeechConfig(
        text_config=GraniteConfig(**_text(vocab)),
        encoder_config=GraniteSpeechEncoderConfig(input_dim=160, num_layers=ALAYERS, hidden_dim=AH, num_heads=AHEADS,
                                                  output_dim=8, context_size=20, max_pos_emb=64, dropout=0.0),
        projector_config=Blip2QFormerConfig(hidden_size=AH, num_hidden_layers=1, num_attention_heads=AHEADS,
                                            intermediate_size=2 * AH, encoder_hidden_size=AH,
                                            cross_attention_frequency=1),
        audio_token_index=audio_id, has_lora_adapter=False)
    # GraniteSpeechFeatureExtractor needs torchaudio (not installable here): manual inputs, see hf_native.
    return GraniteSpeechForConditionalGeneration(cfg).eval(), _ManualProcessor(None, tok)


def _phi4(tok, vocab, audio_id):
    from transformers import (Phi4MultimodalAudioConfig, Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor,
                              Phi4MultimodalForCausalLM, Phi4MultimodalVisionConfig)

    cfg = Phi4MultimodalConfig(
        **_text(vocab), pad_token_id=tok.pad_token_id or 0, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        vision_config=Phi4MultimodalVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, image_size=28, patch_size=14, crop_size=28,
                                                 image_token_id=tok.image_token_id),
        audio_config=Phi4MultimodalAudioConfig(hidden_size=AH, intermediate_size=2 * AH, num_blocks=ALAYERS,
                                               num_attention_heads=AHEADS, ext_pw_out_channel=AH,
                                               depthwise_separable_out_channel=AH, nemo_conv_channels=AH,
                                               audio_token_id=audio_id))
    # Phi4MultimodalProcessor needs torchvision for its image half: feature extractor + manual expansion.
    return Phi4MultimodalForCausalLM(cfg).eval(), _ManualProcessor(Phi4MultimodalFeatureExtractor(), tok)


def _qwen2_5_omni(tok, vocab, audio_id):
    from transformers import (Qwen2_5OmniAudioEncoderConfig, Qwen2_5OmniTextConfig,
                              Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration,
                              Qwen2_5OmniVisionEncoderConfig)

    text = _text(vocab)
    cfg = Qwen2_5OmniThinkerConfig(
        audio_config=Qwen2_5OmniAudioEncoderConfig(num_mel_bins=128, encoder_layers=ALAYERS,
                                                   encoder_attention_heads=AHEADS, encoder_ffn_dim=2 * AH,
                                                   d_model=AH, output_dim=H),
        vision_config=Qwen2_5OmniVisionEncoderConfig(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                                                     out_hidden_size=H, fullatt_block_indexes=[0]),
        text_config=Qwen2_5OmniTextConfig(**text, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                   "mrope_section": [1, 1, 2]}),
        audio_token_index=audio_id, image_token_index=tok.image_token_id, video_token_index=tok.video_token_id,
        audio_start_token_id=tok.audio_bos_token_id, audio_end_token_id=tok.audio_eos_token_id)
    cfg.vision_start_token_id = tok.vision_bos_token_id  # the real config.json carries it as an extra key
    # Qwen2_5OmniProcessor needs torchvision (video processor): feature extractor + manual expansion.
    return Qwen2_5OmniThinkerForConditionalGeneration(cfg).eval(), _ManualProcessor(_whisper_fe(128), tok)


_BUILDERS = {"qwen2_audio": _qwen2_audio, "voxtral": _voxtral, "granite_speech": _granite,
             "phi4_multimodal": _phi4, "qwen2_5_omni": _qwen2_5_omni}
