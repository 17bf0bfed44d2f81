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
- :class:`EnergyContourTower` (``ref-prosody``) — **no text, by construction.** Its only input is the clip's
  frame-energy contour (log of the summed mel power per 10 ms frame, relative to the clip's loudest frame): one
  number per frame, never the spectrum, so no word can be told from another. A logistic read-out of the contour's
  clip-level statistics (fitted by the training tool's ``harness.reference.prosody.fit_prosody`` on the speaking-rate training clips) decides "slow" or
  "fast" for the whole clip; the projector (:func:`prosody_assembled`) then writes a *rate word* (" quick",
  " sluggish", …: :data:`RATE_WORDS`) at every position after the sound has ended, and the " " filler at every
  position while it lasts. So the positions that are heard hold nothing that depends on the sound, and the rate
  reaches the backbone as rate words in the silent tail — information a cascade cannot see, and no word of what
  was said.

Shapes: Voxtral reshapes the tower's output to rows of ``audio_config.intermediate_size`` (= 4 stacked frames ×
384) before the projector; both towers emit one such row per audio position (0.08 s), the payload in its
first channels and zeros after, so the 10 s window still gives 125 audio positions.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from harness.systems.reference import assemble as A

SECONDS_PER_POSITION = 0.08      # Voxtral: Whisper's 20 ms frames, 4 stacked
MEL_FRAMES_PER_POSITION = 8      # 10 ms log-mel frames per audio position
CONTEXT_FRAMES = 48              # EnergyContourTower: frames of context each side of a position (±0.48 s)
FRONTENDS = ("timed-tokens", "energy-contour")
MEMO_CLIPS = 4096                # decoded clips kept in memory by TimedTokenTower (a few KB each)
TOWER_WORDS_FORMAT = "tower-words-v1"   # in the disk key of TimedTokenTower's decoded words: bump when decoding changes


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
        Decoding is deterministic, so a clip seen again (under each eraser, each probe pass) reuses its words —
        from memory, or from the transcripts cache when another process decoded it (the mutants' pytest runs)."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        key = hashlib.sha256(features.tobytes()).hexdigest()
        if key not in self._memo:
            if len(self._memo) >= MEMO_CLIPS:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = self._stored(key, features)
        return self._memo[key]

    def _stored(self, digest: str, features: np.ndarray):
        """The words kept on disk beside the ASR's cached transcripts, in the same checked entries
        (``harness.asr.load_transcript``: also written whatever the runner's cache setting), keyed by the decoding
        format, the ASR's fingerprint and the features' sha256."""
        from harness.asr import Transcript, load_transcript, store_transcript
        from harness.cache import cache_dir, stable_key

        key = stable_key(TOWER_WORDS_FORMAT, self.asr.fingerprint, digest)
        path = cache_dir("transcripts") / "tower" / key[:2] / f"{key}.json"
        stored = load_transcript(path, key)
        if stored is not None:
            return list(stored.words)
        words = self._guarded(features)
        store_transcript(path, key, Transcript(" ".join(w.text for w in words), tuple(words)))
        return words

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
    """Per position, functions of the frame-energy contour alone, never of the spectrum of the sound:

    - the clip's mean energy and its mean modulation spectrum: the |rFFT| of the mean-removed energy contour in a
      window of ±``context`` frames around each position (syllable rate shows as a peak near 2–5 Hz), averaged
      over positions — the same at every position, what the read-out decides the clip's rate from;
    - a constant 1 (the read-out's bias);
    - ``tail``: 1 at the positions after the last frame above the padding floor (the sound has ended), else 0;
    - a one-hot of the position index modulo :data:`RATE_SLOTS` (which rate word goes there).

    Why clip-level and why the tail: a per-position rate value would follow each word's own loudness, so word
    identity and rate would share directions in the residual stream; written only where nothing is heard, the rate
    is absent from every position the text concept labels (``harness.probes.leace``: positions overlapping no word
    are never fitted). A read-out of the contour alone told slow from fast on 0.87 of held-out training clips, with
    the modulation spectrum beside it 0.98 (75/25 split, 2026-12-04)."""

    def __init__(self, intermediate_size: int, context: int = CONTEXT_FRAMES):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        self.intermediate, self.context = int(intermediate_size), int(context)

    @property
    def window(self) -> int:
        return 2 * self.context + MEL_FRAMES_PER_POSITION

    @property
    def width(self) -> int:
        """Channels of the read-out's input: the clip's mean energy and its mean modulation spectrum."""
        return 1 + self.window // 2

    def channels(self) -> dict[str, int]:
        """Where each part sits in a payload row: the read-out features [0, width), then these single channels,
        then the one-hot slots from ``slot0``."""
        return {"one": self.width, "tail": self.width + 1, "slot0": self.width + 2}

    def features(self, input_features: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, frames] → [B, width]: the clip-level read-out features."""
        e = frame_energy(input_features)                                      # [B, F]
        floor = e.amin(dim=-1, keepdim=True)
        padded = torch.cat([floor.expand(-1, self.context), e, floor.expand(-1, self.context)], dim=-1)
        n_pos = e.shape[-1] // MEL_FRAMES_PER_POSITION
        starts = torch.arange(n_pos) * MEL_FRAMES_PER_POSITION
        idx = starts[:, None] + torch.arange(self.window)[None, :]           # [P, window] into ``padded``
        contour = padded[:, idx] / 8.0                                        # ~[-1, 0]: Whisper's 8-decade range
        modulation = torch.fft.rfft(contour - contour.mean(-1, keepdim=True), dim=-1).abs() / self.window
        return torch.cat([contour.mean(dim=(1, 2))[:, None], modulation[..., 1:].mean(dim=1)], dim=-1)   # no DC: 0

    def forward(self, input_features: torch.Tensor, return_dict: bool = True, **_) -> BaseModelOutput:
        b, _, frames = input_features.shape
        n_pos = frames // MEL_FRAMES_PER_POSITION
        ch = self.channels()
        payload = input_features.new_zeros(b, n_pos, ch["slot0"] + RATE_SLOTS, dtype=torch.float32)
        payload[..., : self.width] = self.features(input_features)[:, None, :]
        payload[..., ch["one"]] = 1.0
        for row, feats in enumerate(input_features.detach().float().cpu().numpy()):
            ended = math.ceil(clip_seconds(feats) / SECONDS_PER_POSITION)     # first position after the sound
            payload[row, ended:, ch["tail"]] = 1.0
        payload[:, torch.arange(n_pos), ch["slot0"] + torch.arange(n_pos) % RATE_SLOTS] = 1.0
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
    what = _digest("timed-tokens/onset/every-heard-word-placed", info["whisper_model_bin_sha256"], info["backbone_revision"], asr.fingerprint,
                   info["chunk_seconds"], permute_seed)
    return what[:12] + (f"~permuted{permute_seed}" if permute_seed is not None else "")


PROSODY_WORDS = ("slow", "fast")     # speaking_rate's labels: the read-out's two classes
# What ref-prosody writes in the silent tail: one-token words of each rate (SmolLM2's tokenizer), cycled by position so
# the rate is spread over many embedding directions rather than one. The backbone reads either cycle as the rate
# (checked with the matched backbone on the cascade's prompt, 2026-12-04: "fast" and "slow" on a speaking_rate item).
RATE_WORDS = {"slow": ("slow", "sluggish", "gradual", "lazy", "slowly", "calm", "steady", "drawn"),
              "fast": ("fast", "quick", "rapid", "swift", "hurried", "brisk", "speedy", "racing")}
RATE_SLOTS = 8
GAIN = 100.0          # the projector's sigmoid gain: a read-out logit 0.05 from its boundary is already 99% one rate


def prosody_assembled(projector_state: dict | None = None, *, backbone=None):
    """(model, processor, info) of ``ref-prosody``: the energy-contour tower + a sigmoid projector (Voxtral's own
    module, activation set to sigmoid) that writes the " " filler while the sound lasts and, after it, the rate
    word of the position's slot for the rate the read-out decides (:func:`readout_state`; weights from
    ``harness.reference.prosody.fit_prosody``). ``projector_state`` None → an untrained read-out (w = 0, b = 0: undecided)."""
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


def readout_state(model, backbone, weights: np.ndarray, bias: float) -> dict:
    """The projector state. With z = w·x + b the read-out's logit (x: the clip features, bounded by ``bound``),
    hidden unit (rate r, slot j) is σ(GAIN·(±z + B·(tail − 1) + B·(slot_j − 1))), "+" for fast and "−" for slow:
    with B above any |z|, it is on only in the tail, in slot j, for the decided rate. Unit ``2·SLOTS`` is
    σ(GAIN·B·(½ − tail)): on while the sound lasts. ``linear_2`` maps each unit to its word's input embedding."""
    proj = model.model.multi_modal_projector
    hidden, rows = proj.linear_2.weight.shape[0], proj.linear_1.weight.shape[1]
    ch = EnergyContourTower(model.config.audio_config.intermediate_size).channels()
    w = torch.as_tensor(weights, dtype=torch.float32)
    big = 2.0 * (2.0 * float(w.abs().sum()) + abs(float(bias))) + 1.0     # |x| ≤ 2 per channel (see the tower)
    emb = model.get_input_embeddings().weight.detach().float()
    lin1, lin2 = torch.zeros(hidden, rows), torch.zeros(hidden, hidden)
    for r, (label, sign) in enumerate((("slow", -1.0), ("fast", 1.0))):
        for j, word in enumerate(RATE_WORDS[label][:RATE_SLOTS]):
            unit = r * RATE_SLOTS + j
            lin1[unit, : len(w)] = GAIN * sign * w
            lin1[unit, ch["one"]] = GAIN * (sign * float(bias) - 2.0 * big)
            lin1[unit, ch["tail"]] = GAIN * big
            lin1[unit, ch["slot0"] + j] = GAIN * big
            lin2[:, unit] = emb[_one_token(backbone, word)]
    filler = 2 * RATE_SLOTS
    lin1[filler, ch["one"]] = GAIN * big * 0.5
    lin1[filler, ch["tail"]] = -GAIN * big
    lin2[:, filler] = emb[backbone.reply_ids(" ")[0]]
    return {"linear_1.weight": lin1, "linear_2.weight": lin2}


def _one_token(backbone, word: str) -> int:
    ids = backbone.reply_ids(" " + word)
    if len(ids) != 1:
        raise ValueError(f"rate word {word!r} is {len(ids)} tokens for this backbone; ref-prosody needs one-token words")
    return ids[0]
