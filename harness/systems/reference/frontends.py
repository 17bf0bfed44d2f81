"""Audio front ends whose content is known by construction: the known-answer controls for claims 2–4.

Both sit in the audio-tower slot of the reference ``VoxtralForConditionalGeneration`` (``assemble``), so the
model is still transformers' own class: its placeholder merge, decoder, hooks, the adapter
(``harness.systems.hf_native``, family ``voxtral``), the logit lens and LEACE all run the code real models use.
Only what reaches the audio positions differs, and each front end states what that is:

- :class:`TimedTokenTower` (``ref-transcriber``) — **text at the audio positions, by construction.** It decodes the
  clip's log-mel features with the packaged Whisper tiny.en (faster-whisper, greedy, word timestamps: the matched
  cascade's own ASR settings) and writes, at each audio position, the backbone's *own input embedding* of the
  token being spoken there ("onset" layout of ``harness.positions``: a word's tokens from its first
  position on, the " " token everywhere else — the layout the frozen backbone reads back best). The projector
  is the identity (``linear_1`` selects the 576 embedding channels, no activation, ``linear_2`` = I), so the
  audio embeddings *are* token embeddings. Nothing is trained.
- :class:`EnergyContourTower` (``ref-prosody``) — **no text, by construction.** Each audio position receives only
  the clip's frame-energy contour (log of the summed mel power per 10 ms frame, relative to the clip's loudest
  frame) in a ±``CONTEXT_FRAMES`` window around it: one number per frame, never the spectrum, so no word can be
  told from another. Its projector is a logistic read-out (:func:`prosody_assembled`, fitted by the training
  tool's ``harness.reference.prosody.fit_prosody`` on the speaking-rate training clips) placing each position
  between the backbone's embeddings of " slow" and " fast" — rate information a cascade cannot see, and no word
  of what was said.

Shapes: Voxtral reshapes the tower's output to rows of ``audio_config.intermediate_size`` (= 4 stacked frames ×
384) before the projector; both towers emit one such row per audio position (0.08 s), the payload in its
first channels and zeros after, so the 10 s window still gives 125 audio positions.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from harness.systems.reference import assemble as A

SECONDS_PER_POSITION = 0.08      # Voxtral: Whisper's 20 ms frames, 4 stacked
MEL_FRAMES_PER_POSITION = 8      # 10 ms log-mel frames per audio position
CONTEXT_FRAMES = 48              # EnergyContourTower: frames of context each side of a position (±0.48 s)
FRONTENDS = ("timed-tokens", "energy-contour")
MEMO_CLIPS = 4096                # decoded clips kept in memory by TimedTokenTower (a few KB each)


def _rows(payload: torch.Tensor, intermediate: int, stack: int = A.STACK) -> torch.Tensor:
    """[B, P, D ≤ intermediate] payload → [B, P·stack, intermediate/stack]: what Voxtral reshapes back to rows."""
    b, p, d = payload.shape
    if d > intermediate:
        raise ValueError(f"front-end payload of {d} channels does not fit a projector row of {intermediate}")
    rows = payload.new_zeros(b, p, intermediate)
    rows[..., :d] = payload
    return rows.reshape(b, p * stack, intermediate // stack)


class TimedTokenTower(torch.nn.Module):
    """ASR-timed tokens as the backbone's input embeddings ("onset" layout). ``permute_seed`` (the emergence
    mutant): each token is written as a fixed random *other* token's embedding — text-shaped, not the words said."""

    def __init__(self, embeddings: torch.Tensor, backbone, asr, intermediate_size: int, *,
                 permute_seed: int | None = None):
        super().__init__()
        self.layers = torch.nn.ModuleList()         # nothing trainable (the trainer reads ``.layers``)
        self.register_buffer("table", embeddings.detach().float().clone(), persistent=False)
        self.backbone, self.asr, self.intermediate = backbone, asr, int(intermediate_size)
        self.filler = backbone.reply_ids(" ")[0]
        self.permutation = None
        if permute_seed is not None:
            gen = torch.Generator().manual_seed(int(permute_seed))
            self.permutation = torch.randperm(self.table.shape[0], generator=gen)
        self.last_words: list = []                   # per batch row: the ASR words of the last call (tests read it)
        self._memo: dict = {}                        # features digest → words (insertion-ordered, bounded)

    def words(self, features: np.ndarray):
        """The ASR's timed words for one clip's log-mel features [n_mels, frames] (decoded as the cascade does).
        Decoding is deterministic, so a clip seen again (under each eraser, each probe pass) reuses its words."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        key = hashlib.sha256(features.tobytes()).hexdigest()
        if key not in self._memo:
            if len(self._memo) >= MEMO_CLIPS:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = self._guarded(features)
        return self._memo[key]

    def _guarded(self, features: np.ndarray):
        """The cascade's run-away guard (``harness.asr.ASR.transcribe``) on the same decoding: a loop is re-decoded
        with beam search and a length cap, and cut at the cap if it still loops."""
        import math

        from harness.asr import TOKENS_PER_WORD, runaway, word_cap

        words = self._decode(features)
        if not self.asr.guard:
            return words
        duration = clip_seconds(features)
        if runaway(" ".join(w.text for w in words), duration) is None:
            return words
        cap = word_cap(duration)
        again = self._decode(features, beam_size=max(5, self.asr.beam_size), no_repeat_ngram_size=3,
                             max_new_tokens=min(220, math.ceil(cap * TOKENS_PER_WORD)))
        return again[:cap] if runaway(" ".join(w.text for w in again), duration) else again

    def _decode(self, features: np.ndarray, *, beam_size: int | None = None, no_repeat_ngram_size: int = 0,
                max_new_tokens: int | None = None):
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        m = self.asr.model
        tok = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language="en")
        opts = TranscriptionOptions(
            beam_size=beam_size or self.asr.beam_size, best_of=1, patience=1, length_penalty=1, repetition_penalty=1,
            no_repeat_ngram_size=no_repeat_ngram_size, log_prob_threshold=-1.0, no_speech_threshold=0.6, compression_ratio_threshold=2.4,
            condition_on_previous_text=False, prompt_reset_on_temperature=0.5, temperatures=[0.0],
            initial_prompt=None, prefix=None, suppress_blank=True, suppress_tokens=get_suppressed_tokens(tok, [-1]),
            without_timestamps=False, max_initial_timestamp=1.0, word_timestamps=True,
            prepend_punctuations="\"'“¿([{-", append_punctuations="\"'.。,，!！?？:：”)]}、", multilingual=False,
            max_new_tokens=max_new_tokens, clip_timestamps="0", hallucination_silence_threshold=None, hotwords=None)
        segments = m.generate_segments(features, tok, opts, log_progress=False)
        from harness.asr import Word

        return [Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                for s in segments for w in (s.words or ())]

    def forward(self, input_features: torch.Tensor, return_dict: bool = True, **_) -> BaseModelOutput:
        from harness.positions import position_tokens

        n_pos = input_features.shape[-1] // MEL_FRAMES_PER_POSITION
        ids, self.last_words = [], []
        for feats in input_features.detach().float().cpu().numpy():
            words = self.words(feats)
            self.last_words.append(words)
            tokens, _ = position_tokens(self.backbone, words, n_pos, SECONDS_PER_POSITION, layout="onset")
            ids.append([self.filler if t is None else t for t in tokens])
        ids = torch.tensor(ids, dtype=torch.long)
        if self.permutation is not None:
            ids = self.permutation[ids]
        payload = self.table[ids].to(input_features.device)
        return BaseModelOutput(last_hidden_state=_rows(payload, self.intermediate))


def clip_seconds(features: np.ndarray) -> float:
    """Seconds of sound in a window's log-mels [n_mels, frames]: up to the last frame above the padding floor
    (the window is zero-padded audio, whose frames all sit at Whisper's clamp value, the minimum)."""
    loud = np.flatnonzero(features.max(axis=0) > features.min() + 1e-6)
    return float((loud[-1] + 1) / 100) if loud.size else 0.0


def frame_energy(input_features: torch.Tensor) -> torch.Tensor:
    """[B, n_mels, frames] Whisper log-mels → [B, frames] log10 summed mel power, relative to the clip's loudest
    frame. Whisper's features are (max(log10 P, peak − 8) + 4) / 4, so log10 P is recovered up to that floor."""
    log_power = input_features.float() * 4.0 - 4.0
    energy = torch.logsumexp(log_power * np.log(10.0), dim=1) / np.log(10.0)
    return energy - energy.amax(dim=-1, keepdim=True)


class EnergyContourTower(torch.nn.Module):
    """Per position: the frame-energy contour in a window of ±``context`` frames around it, that window's
    modulation spectrum (|rFFT| of the mean-removed contour: syllable rate shows as a peak near 2–5 Hz), and a
    constant 1 — all functions of the energy contour alone, never of the spectrum of the sound.

    Why the modulation spectrum: a linear read-out of the raw contour window tells slow from fast speech on 0.87
    of held-out training clips, with the modulation spectrum beside it on 0.98 (75/25 split of the rate clips,
    2026-12-04, ±0.48 s windows)."""

    def __init__(self, intermediate_size: int, context: int = CONTEXT_FRAMES):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        self.intermediate, self.context = int(intermediate_size), int(context)

    @property
    def window(self) -> int:
        return 2 * self.context + MEL_FRAMES_PER_POSITION

    @property
    def width(self) -> int:
        """Channels of the read-out's input: the contour window and its modulation spectrum (the constant 1 follows)."""
        return self.window + self.window // 2 + 1

    def forward(self, input_features: torch.Tensor, return_dict: bool = True, **_) -> BaseModelOutput:
        e = frame_energy(input_features)                                      # [B, F]
        floor = e.amin(dim=-1, keepdim=True)
        padded = torch.cat([floor.expand(-1, self.context), e, floor.expand(-1, self.context)], dim=-1)
        n_pos = e.shape[-1] // MEL_FRAMES_PER_POSITION
        starts = torch.arange(n_pos) * MEL_FRAMES_PER_POSITION
        idx = starts[:, None] + torch.arange(self.window)[None, :]           # [P, window] into ``padded``
        contour = padded[:, idx] / 8.0                                        # ~[-1, 0]: Whisper's 8-decade range
        modulation = torch.fft.rfft(contour - contour.mean(-1, keepdim=True), dim=-1).abs() / self.window
        ones = contour.new_ones(*contour.shape[:2], 1)                        # a constant channel (the read-out's bias)
        payload = torch.cat([contour, modulation, ones], dim=-1)
        return BaseModelOutput(last_hidden_state=_rows(payload, self.intermediate))


@torch.no_grad()
def identity_projector(model) -> None:
    """``linear_1`` = [I | 0] (the first ``hidden`` channels of a row), no activation, ``linear_2`` = I."""
    proj = model.model.multi_modal_projector
    hidden = proj.linear_2.weight.shape[0]
    proj.linear_1.weight.zero_()
    proj.linear_1.weight[:, :hidden] = torch.eye(hidden)
    proj.linear_2.weight.copy_(torch.eye(hidden))
    proj.act = torch.nn.Identity()
    model.config.projector_hidden_act = "linear"


def _digest(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def transcriber(backbone=None, *, permute_seed: int | None = None, name: str = "ref-transcriber"):
    """``ref-transcriber`` behind the standard adapter. Revision: a digest of what defines it (the ASR model file,
    the backbone revision, the layout), so a change of any part changes the pinned revision."""
    from harness.asr import load_asr
    from harness.lm import load_backbone
    from harness.systems.hf_native import HFNativeSpeechLLM

    backbone = backbone or load_backbone()
    model, proc, info = A.assemble(backbone=backbone)
    asr = load_asr()
    model.model.audio_tower = TimedTokenTower(model.get_input_embeddings().weight, backbone, asr,
                                              model.config.audio_config.intermediate_size,
                                              permute_seed=permute_seed)
    identity_projector(model)
    for p in model.parameters():
        p.requires_grad_(False)
    revision = transcriber_revision(info, asr, permute_seed)
    return HFNativeSpeechLLM(model.eval(), proc, "voxtral", model_id="cascade-eq/ref-transcriber",
                             revision=revision, name=name)


def load_transcriber(spec):
    """The registry entry ``spec`` (loader "transcriber"), checked against the revision the registry pins."""
    system = transcriber(name=spec.id)
    if system.backbone.revision != spec.revision:
        raise ValueError(f"{spec.id}: fixtures/models/{spec.id}.toml pins revision {spec.revision!r} but its parts "
                         f"(ASR model, backbone, layout) now build {system.backbone.revision!r}; update the entry")
    return system


def transcriber_revision(info: dict, asr, permute_seed: int | None = None) -> str:
    what = _digest("timed-tokens/onset", info["whisper_model_bin_sha256"], info["backbone_revision"], asr.fingerprint,
                   info["chunk_seconds"], permute_seed)
    return what[:12] + (f"~permuted{permute_seed}" if permute_seed is not None else "")


PROSODY_WORDS = ("slow", "fast")     # speaking_rate's labels: the two ends of ref-prosody's read-out


def prosody_assembled(projector_state: dict | None = None, *, backbone=None):
    """(model, processor, info) of ``ref-prosody``: the energy-contour tower + a sigmoid read-out projector.

    The projector (Voxtral's own module, activation set to sigmoid) is
    ``e_slow + σ(w·x + b) · (e_fast − e_slow)``: hidden unit 0 is a logistic classifier of the position's energy
    window ``x`` (weights from ``harness.reference.prosody.fit_prosody``), hidden unit 1 is a saturated constant;
    ``e_slow``/``e_fast`` are the backbone's input embeddings of " slow" and " fast". So every audio position is a
    point on one segment of embedding space, placed by the energy contour alone — rate can reach the backbone,
    words cannot.
    ``projector_state`` None → an untrained read-out (w = 0: every position halfway)."""
    backbone = backbone or _backbone()
    model, proc, info = A.assemble(backbone=backbone)
    tower = EnergyContourTower(model.config.audio_config.intermediate_size)
    model.model.audio_tower = tower
    proj = model.model.multi_modal_projector
    proj.act = torch.nn.Sigmoid()
    model.config.projector_hidden_act = "sigmoid"
    if projector_state is None:
        projector_state = readout_state(model, backbone, np.zeros(tower.width), 0.0)
    proj.load_state_dict(projector_state, strict=True)
    digest = A.state_digest(A.projector_weights(model))
    info = dict(info, frontend="energy-contour", context_frames=CONTEXT_FRAMES, projector_sha256=digest,
                revision=info["revision"].rsplit("+proj:", 1)[0] + f"+energy{CONTEXT_FRAMES}+proj:{digest[:12]}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model, proc, info


def _backbone():
    from harness.lm import load_backbone

    return load_backbone()


SATURATE = 30.0     # hidden unit 1: σ(30) = 1 − 9e-14, the constant that carries e_slow


def readout_state(model, backbone, weights: np.ndarray, bias: float) -> dict:
    """The projector state for ``e_slow + σ(w·x + b)(e_fast − e_slow)``; the tower's payload is x (its first
    ``width`` channels) followed by a constant 1 channel at index ``width`` (see ``EnergyContourTower``)."""
    proj = model.model.multi_modal_projector
    hidden, rows = proj.linear_2.weight.shape[0], proj.linear_1.weight.shape[1]
    width = len(weights)
    emb = model.get_input_embeddings().weight
    e_slow, e_fast = (emb[backbone.reply_ids(" " + w)[0]].detach().float() for w in PROSODY_WORDS)
    lin1 = torch.zeros(hidden, rows)
    lin1[0, :width] = torch.as_tensor(weights, dtype=torch.float32)
    lin1[0, width] = float(bias)
    lin1[1, width] = SATURATE
    lin2 = torch.zeros(hidden, hidden)
    lin2[:, 0] = e_fast - e_slow
    lin2[:, 1] = e_slow
    return {"linear_1.weight": lin1, "linear_2.weight": lin2}
