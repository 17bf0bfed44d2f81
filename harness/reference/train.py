"""Train the reference speech-LLMs' projector (Ultravox-style) on CPU: ``ref-cascade`` and ``ref-acoustic``.
(``device="cuda"`` / ``--device cuda`` runs the same loop on a GPU; the manifest records which device trained.)

Model: :func:`harness.systems.reference.assemble.assemble` — frozen converted Whisper tiny.en encoder, seeded random
``multi_modal_projector``, frozen offline backbone. Only the projector trains (and, for ``ref-acoustic`` with
``unfreeze_encoder_layers`` > 0, the top encoder layers + the encoder's final LayerNorm).

Objectives (a batch mixes them; shares in ``HYPER[mode]["mix"]``), from the prototype's findings
(``shared/FINDINGS.md``: repeat-only CE makes the audio work under one instruction only; distillation
without the repeat objective learns only the gist):

- ``repeat``: "Repeat exactly what was said." + audio → the transcript, cross-entropy on the reply tokens.
- ``own``: the sentence's own task prompt (``prompts.messages``, the suite's exact prompt) with the audio in the
  slot; the **teacher** is the same frozen backbone reading the transcript in the slot (exactly what the
  cascade sees with a perfect ASR). The reply is the teacher's own answer (its highest-scoring option, chosen
  by the rule ``answer_from_prefix`` uses) + end-of-turn; loss = KL(teacher ‖ student) over the teacher's top-k
  (``topk``) next-token distribution at every reply position.
- ``other``: the same distillation under *another* task's instruction (options: the task's labels, or a
  seeded donor item's choices for multiple choice), so the audio embeddings work under many instructions.
- ``rate`` (``ref-acoustic`` only): the speaking_rate prompt on speaking-rate clips (speaking_rate train items
  at their label's rate, plus ``rate_extra`` other sentences re-spoken at 0.7/1.45) → the gold label,
  cross-entropy. This is information a cascade cannot see. In ``ref-acoustic`` the ``own``/``other``
  draws never use the speaking_rate instruction (the teacher, reading text, can only guess there).

Warm start (``align_steps`` > 0, ``--align-steps``): before the loop, :mod:`harness.reference.align` regresses
the projector's audio embeddings onto the input embeddings of the tokens spoken at each position (ASR word
timestamps) — the only recipe measured so far that gets repeat cross-entropy below the ~3-nat gist plateau.

Efficiency: the frozen encoder's output for each clip is computed once and kept in memory (~0.75 MB a clip);
logits are computed only at reply positions. The student's merged embeddings are built exactly as
``VoxtralModel.forward`` does (``masked_scatter`` of ``get_audio_features`` into the placeholder run);
the unit test checks them against the adapter's ``prefix_embeds``.

Output (``out_dir``, default ``fixtures/reference/<mode>/``): ``projector.safetensors`` (float32, ~4.9 MB),
``encoder.safetensors`` when encoder layers were tuned, and ``manifest.json`` (input hashes, data hash,
code version, seed, hyperparameters, curve summary, held-out checks). ``harness.systems.reference.trained``
loads them back (the suite's path to a trained reference; it never imports this trainer).
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from harness import paths, prompts
from harness.reference import data as D
from harness.systems.reference.trained import load_weights

MODES = ("ref-cascade", "ref-acoustic")
REPEAT_INSTRUCTION = "Repeat exactly what was said."
END = "<|im_end|>"

# Seconds/step at batch 8 (~190 tokens a sample: 125 audio embeddings + prompt + reply) on this project's
# 2-core CPU (AVX512-BF16), idle: fp32 ~5–6 s, bf16 autocast ~3.2 s (measured 2026-11-25; the frozen encoder
# runs once per clip in float32 outside autocast). Another heavy job on the same 2 cores slows a step
# several-fold. The prototype's 1.6–2.0 s/step (FINDINGS) was at ~90 tokens a sample.
MEASURED_SECONDS_PER_STEP = 3.3
BUDGET_MINUTES = 55
DEFAULT_STEPS = int(BUDGET_MINUTES * 60 / MEASURED_SECONDS_PER_STEP) // 100 * 100   # 1000

_COMMON = dict(batch=8, lr=1e-3, precision="bf16", weight_decay=0.01, warmup=40, min_lr_frac=0.1, clip=1.0, topk=64,
               log_every=10, check_every=100, check_n=12, check_max_new_tokens=48,
               unfreeze_encoder_layers=0, rate_extra=0, init_from=None, match_text_scale=False,
               align_steps=0, align_clips=400, align_lr=1e-3, align_layout="spread", scrambled=0)
HYPER = {
    "ref-cascade": dict(_COMMON, mix={"repeat": 0.4, "own": 0.35, "other": 0.25}),
    "ref-acoustic": dict(_COMMON, rate_extra=240, mix={"repeat": 0.3, "own": 0.25, "other": 0.2, "rate": 0.25}),
}


def with_repeat_share(mix: dict, share: float) -> dict:
    """``mix`` with the repeat objective at ``share``; the other objectives keep their relative weights."""
    if not 0 <= share <= 1:
        raise ValueError(f"repeat share {share}: expected a value in [0, 1]")
    rest = {k: v for k, v in mix.items() if k != "repeat"}
    total = sum(rest.values()) or 1.0
    return {"repeat": share, **{k: round((1 - share) * v / total, 4) for k, v in rest.items()}}


def repeat_messages(content: str) -> list[dict]:
    """The repeat prompt (training objective *and* the held-out repeat-WER check use exactly this)."""
    return [{"role": "user", "content": f"{REPEAT_INSTRUCTION}\n{content}"}]


# -- samples ------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    kind: str                       # repeat | own | other | rate
    clip: int                       # index into the clip list (encoder cache key)
    ids: list[int]                  # student prompt ids (audio placeholder expanded)
    reply: list[int]                # reply token ids (+ end-of-turn)
    teacher_idx: torch.Tensor | None = None   # [len(reply), k] teacher's top-k token ids (KL samples)
    teacher_logp: torch.Tensor | None = None  # [len(reply), k] teacher's log-probs renormalised over top-k
    extra: dict = field(default_factory=dict)


def task_view(task, item, donor_pool: dict, rng: random.Random):
    """An item-like record of ``item``'s sentence under ``task``'s instruction (options from ``task``)."""
    if item.task == task.name:
        return item
    if task.kind == "classification":
        return dataclasses.replace(item, task=task.name, options=task.labels, label=task.labels[0], speech={})
    donors = donor_pool[task.name]
    donor = donors[rng.randrange(len(donors))]
    return dataclasses.replace(donor, id=f"{item.id}~{task.name}", text=item.text, speech={})


class Teacher:
    """The frozen backbone reading the transcript in the slot; per-(task, view, text) results are memoised."""

    def __init__(self, backbone, topk: int):
        self.backbone, self.topk = backbone, topk
        self.end = backbone.reply_ids(END)
        self.memo: dict = {}

    @torch.no_grad()
    def reply(self, task, item, text: str):
        """(chosen option, reply ids, top-k ids [n, k], renormalised top-k log-probs [n, k])."""
        key = (task.name, item.options, text)
        if key in self.memo:
            return self.memo[key]
        bb = self.backbone
        prompt = bb.prompt_ids(prompts.messages(task, item, text))
        opts = [bb.reply_ids(o) for o in item.options]
        rows = [prompt + o + self.end for o in opts]
        width = max(map(len, rows))
        pad = bb.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=bb.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=bb.device)
        logits = bb.model(input_ids=ids, attention_mask=mask).logits.float()
        P = len(prompt)
        logp = torch.log_softmax(logits[:, P - 1:], dim=-1)
        scores = [float(sum(logp[k, j, t] for j, t in enumerate(o))) for k, o in enumerate(opts)]
        best = max(range(len(scores)), key=lambda k: (scores[k], -k))   # answer_from_prefix's rule
        reply = opts[best] + self.end
        top = logits[best, P - 1: P - 1 + len(reply)].topk(self.topk, dim=-1)
        out = (item.options[best], reply, top.indices, torch.log_softmax(top.values, dim=-1))
        self.memo[key] = out
        return out


# -- the trainer ----------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, mode: str, *, seed: int = 0, hyper: dict | None = None, assembled=None, backbone=None,
                 chunk_seconds: int | None = None, device: str = "cpu", progress: Callable[[str], None] = print):
        from harness.lm import load_backbone
        from harness.systems.reference import assemble as A
        from harness.systems.hf_native import HFNativeSpeechLLM

        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {MODES}")
        self.mode, self.seed, self.progress = mode, seed, progress
        self.hyper = dict(HYPER[mode], **(hyper or {}))
        torch.manual_seed(seed)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU here "
                             "(train on the CPU with --device cpu, or install a CUDA build of torch)")
        self.backbone = backbone or load_backbone(device=device)
        if assembled is None:
            assembled = A.assemble(seed=seed, chunk_seconds=chunk_seconds or A.CHUNK_SECONDS, backbone=self.backbone)
        self.model, self.processor, self.info = assembled
        self.model.to(self.device)
        if self.hyper["precision"] not in ("bf16", "fp32"):
            raise ValueError(f"precision {self.hyper['precision']!r}: expected 'bf16' (autocast) or 'fp32'")
        if self.hyper["init_from"]:      # continue from another trained reference (e.g. ref-acoustic ← ref-cascade)
            proj, enc = load_weights(Path(self.hyper["init_from"]))
            self.model.model.multi_modal_projector.load_state_dict(proj, strict=True)
            if enc:
                self.model.model.audio_tower.load_state_dict(enc, strict=False)
        self.system = HFNativeSpeechLLM(self.model, self.processor, "voxtral", model_id=self.info["model_id"],
                                        revision=self.info["revision"], name=mode)
        self.tok = self.processor.tokenizer
        self.chunk_seconds = self.info["chunk_seconds"]
        self.n_audio = self.info["audio_embeddings_per_clip"]
        self.teacher = Teacher(self.backbone, self.hyper["topk"])
        tower = self.model.model.audio_tower
        k = int(self.hyper["unfreeze_encoder_layers"])
        if not 0 <= k <= len(tower.layers):
            raise ValueError(f"unfreeze_encoder_layers={k}: the encoder has {len(tower.layers)} layers")
        self.split = len(tower.layers) - k          # cached encoder state = input of layer `split`
        for name, p in self.model.named_parameters():
            p.requires_grad_(".multi_modal_projector." in f".{name}")
        if k:
            for mod in [*tower.layers[self.split:], tower.layer_norm]:
                for p in mod.parameters():
                    p.requires_grad_(True)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.enc_cache: dict[int, torch.Tensor] = {}
        self._prompt_memo: dict = {}
        self.text_rms = float(self.model.get_input_embeddings().weight.float().pow(2).mean().sqrt())
        self.audio_rms = float("nan")    # RMS of the last batch's audio embeddings (set by merged_embeds)

    # -- audio side --------------------------------------------------------------------------------------
    @torch.no_grad()
    def _encoder_state(self, i: int, audio) -> torch.Tensor:
        if i not in self.enc_cache:
            with torch.autocast(self.device.type, enabled=False):   # frozen part: float32, once per clip
                self.enc_cache[i] = self._encode(audio)
        return self.enc_cache[i]

    def _encode(self, audio) -> torch.Tensor:
        tower = self.model.model.audio_tower
        feats = self.processor.feature_extractor(audio.samples, sampling_rate=16_000,
                                                 return_tensors="pt")["input_features"].to(self.device)
        if self.split == len(tower.layers):
            h = tower(feats, return_dict=True).last_hidden_state
        else:
            feats = feats.to(tower.conv1.weight.dtype)
            h = F.gelu(tower.conv2(F.gelu(tower.conv1(feats)))).permute(0, 2, 1) + tower.embed_positions.weight
            for layer in tower.layers[: self.split]:
                h = layer(h, attention_mask=None)
                h = h[0] if isinstance(h, tuple) else h
        return h[0].contiguous()

    def audio_embeds(self, states: torch.Tensor) -> torch.Tensor:
        """[B, positions, 384] cached encoder states → [B·n_audio, 576] audio embeddings (with grad)."""
        tower = self.model.model.audio_tower
        h = states
        if self.split < len(tower.layers):
            for layer in tower.layers[self.split:]:
                h = layer(h, attention_mask=None)
                h = h[0] if isinstance(h, tuple) else h
            h = tower.layer_norm(h)
        h = h.reshape(-1, self.model.config.audio_config.intermediate_size)
        return self.model.model.multi_modal_projector(h)

    # -- prompts -----------------------------------------------------------------------------------------
    def student_ids(self, messages: list[dict]) -> list[int]:
        """Exactly ``HFNativeSpeechLLM.prepare``'s ids: rendered prompt, the one audio token expanded."""
        key = json.dumps(messages)
        if key not in self._prompt_memo:
            ids = self.tok(self.system.render(messages), add_special_tokens=False)["input_ids"]
            if ids.count(self.system.audio_token_id) != 1:
                raise ValueError(f"prompt holds {ids.count(self.system.audio_token_id)} audio tokens: {messages}")
            k = ids.index(self.system.audio_token_id)
            self._prompt_memo[key] = ids[:k] + [self.system.audio_token_id] * self.n_audio + ids[k + 1:]
        return self._prompt_memo[key]

    def sample(self, kind: str, clip: int, ex: D.Example, tasks: dict, donors: dict, rng: random.Random) -> Sample:
        slot = self.system.audio_slot
        if kind == "repeat":
            reply = self.backbone.reply_ids(ex.transcript) + self.teacher.end
            return Sample(kind, clip, self.student_ids(repeat_messages(slot)), reply)
        if kind == "rate":
            task = tasks[D.RATE_TASK]
            view = task_view(task, ex.item, donors, rng)
            reply = self.backbone.reply_ids(ex.label) + self.teacher.end
            return Sample(kind, clip, self.student_ids(prompts.messages(task, view, slot)), reply)
        if kind == "own":
            task = tasks[ex.task.name]
        else:
            others = [t for n, t in tasks.items() if n != ex.task.name
                      and not (self.mode == "ref-acoustic" and n == D.RATE_TASK)]
            task = others[rng.randrange(len(others))]
        view = task_view(task, ex.item, donors, rng)
        choice, reply, idx, logp = self.teacher.reply(task, view, ex.transcript)
        return Sample(kind, clip, self.student_ids(prompts.messages(task, view, slot)), reply, idx, logp,
                      {"teacher_choice": choice, "task": task.name})

    # -- the loss ------------------------------------------------------------------------------------------
    def merged_embeds(self, samples: list[Sample], clips) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(inputs_embeds [B, W, H] with audio merged as VoxtralModel does, attention mask, prompt lengths)."""
        seqs = [s.ids + s.reply for s in samples]
        width = max(map(len, seqs))
        pad = self.tok.pad_token_id or 0
        ids = torch.tensor([q + [pad] * (width - len(q)) for q in seqs], device=self.device)
        mask = torch.tensor([[1] * len(q) + [0] * (width - len(q)) for q in seqs], device=self.device)
        with torch.no_grad():
            embeds = self.model.get_input_embeddings()(ids)
        states = torch.stack([self._encoder_state(s.clip, clips[s.clip][1]) for s in samples])
        audio = self.audio_embeds(states)
        self.audio_rms = float(audio.detach().float().pow(2).mean().sqrt())
        special = (ids == self.system.audio_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(special, audio.to(embeds.dtype))
        return embeds, mask, [len(s.ids) for s in samples]

    def loss(self, samples: list[Sample], clips) -> tuple[torch.Tensor, dict[str, float]]:
        embeds, mask, plen = self.merged_embeds(samples, clips)
        hidden = self.model.model.language_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        per_sample, parts = [], {}
        dev = self.device
        rows = torch.cat([torch.arange(p - 1, p - 1 + len(s.reply), device=dev) for p, s in zip(plen, samples)])
        batch = torch.cat([torch.full((len(s.reply),), b, device=dev) for b, s in enumerate(samples)])
        logp_all = torch.log_softmax(self.model.lm_head(hidden[batch, rows]).float(), dim=-1)
        start = 0
        for s in samples:
            logp = logp_all[start: start + len(s.reply)]
            start += len(s.reply)
            if s.teacher_idx is None:   # cross-entropy on the reply tokens
                val = -logp.gather(-1, torch.tensor(s.reply, device=dev).unsqueeze(-1)).mean()
            else:                       # KL(teacher top-k ‖ student) per reply position
                t_logp, t_idx = s.teacher_logp.to(dev), s.teacher_idx.to(dev)   # the teacher may sit elsewhere
                val = (t_logp.exp() * (t_logp - logp.gather(-1, t_idx))).sum(-1).mean()
            per_sample.append(val)
            parts.setdefault(s.kind, []).append(float(val.detach()))
        total = torch.stack(per_sample).mean()
        return total, {k: sum(v) / len(v) for k, v in parts.items()}

    def param_groups(self) -> list[dict]:
        """With ``match_text_scale``, ``linear_2`` steps at ``lr`` × RMS(linear_2)/RMS(linear_1): its weights are
        kept ~3× smaller than ``linear_1``'s (text-scale output), and Adam's steps are ~``lr`` per weight whatever
        the weight's size — the same relative step for both matrices. Everything else trains at ``lr``."""
        w2 = self.model.model.multi_modal_projector.linear_2.weight
        if not self.hyper["match_text_scale"]:
            return [{"params": self.params}]
        w1 = self.model.model.multi_modal_projector.linear_1.weight
        ratio = float(w2.detach().pow(2).mean().sqrt() / w1.detach().pow(2).mean().sqrt())
        rest = [p for p in self.params if p is not w2]
        return [{"params": rest}, {"params": [w2], "lr": self.hyper["lr"] * ratio}]

    @torch.no_grad()
    def rescale_to_text(self) -> None:
        """Keep the audio embeddings at the RMS of the backbone's token embeddings (a projection step after
        each update: ``linear_2`` is the projector's last, linear map, so scaling it scales the output exactly).

        Why: Voxtral's projector has no output norm (Ultravox's ends in an RMSNorm). Unconstrained, the first
        run's audio embeddings drifted to ~60× the token-embedding norm (190 vs 3.2), so in the pre-norm backbone
        the residual stream at audio positions stayed dominated by the raw embedding and repeat cross-entropy
        plateaued at ~3 nats (gist, not transcript). Uses the RMS measured in this step's forward pass.

        Off by default — measured (2026-11-25, ``--mix repeat=1`` on the 553 fit clips ≤ 3.9 s, 100 steps, lr 2e-3,
        mean repeat CE over steps 80–100): unconstrained 3.01 (plateau from step ~40); constrained 3.41; constrained
        with ``param_groups``' scaled ``linear_2`` lr 3.23, still falling. A full ref-cascade run with it (repeat
        share 0.6) sat at repeat CE ~4.0 from step 30 to 230 and was stopped. Kept as an option to study."""
        if math.isfinite(self.audio_rms) and self.audio_rms > 0:
            self.model.model.multi_modal_projector.linear_2.weight.mul_(self.text_rms / self.audio_rms)

    # -- held-out check -------------------------------------------------------------------------------------
    @torch.no_grad()
    def check(self, heldout, n: int | None = None) -> dict:
        """Repeat-WER (greedy, through the SpeechLLM adapter) + agreement with the teacher on the own task;
        rate accuracy for ref-acoustic. ``heldout``: [(example, audio, transcript)] never trained on."""
        from harness.asr import word_error_rate

        n = n or self.hyper["check_n"]
        picked = heldout[:n]
        refs, hyps, agree, rate = [], [], [], []
        for ex, audio, text in picked:
            inputs = self.system.prepare(repeat_messages(self.system.audio_slot), audio)
            hyps.append(self.system.backbone.generate(self.system.prefix_embeds(inputs),
                                                      max_new_tokens=self.hyper["check_max_new_tokens"]))
            refs.append(text)
            ans = self.system.answer(ex.task, ex.item, audio)
            if ex.task.name == D.RATE_TASK and ex.label is not None:
                rate.append(ans.choice == ex.label)
            if not (self.mode == "ref-acoustic" and ex.task.name == D.RATE_TASK):
                agree.append(ans.choice == self.teacher.reply(ex.task, ex.item, text)[0])
        out = {"repeat_wer": round(word_error_rate(refs, hyps), 4), "n": len(picked),
               "teacher_agreement": round(sum(agree) / len(agree), 4) if agree else None,
               "example": {"ref": refs[0], "hyp": hyps[0]} if refs else None}
        if self.mode == "ref-acoustic":
            out["rate_accuracy"] = round(sum(rate) / len(rate), 4) if rate else None
        return out

    # -- the loop --------------------------------------------------------------------------------------------
    def fit(self, steps: int, fit, heldout, rate_clips=(), *, repeat_clips=(),
            max_minutes: float | None = None) -> dict:
        """Train ``steps`` steps on ``fit`` ([(example, audio, transcript)]); ``rate_clips`` feed the rate objective,
        ``repeat_clips`` (scrambled sentences) only the repeat objective, which draws from fit + them."""
        from harness.tasks import load_task

        h = self.hyper
        clips = list(fit) + list(rate_clips) + list(repeat_clips)
        repeat_pool = [*range(len(fit)), *range(len(fit) + len(rate_clips), len(clips))]
        tasks = {n: load_task(n) for n in D.TRAIN_TASKS}
        donors = {n: list(t.train) for n, t in tasks.items() if t.kind == "multiple_choice"}
        rate_pool = [i for i, (ex, _, _) in enumerate(clips) if ex.label is not None]
        mix = {k: v for k, v in h["mix"].items() if v > 0}
        if "rate" in mix and not rate_pool:
            raise ValueError("the rate objective needs speaking-rate clips (labelled examples)")
        kinds, weights = list(mix), list(mix.values())
        rng = random.Random(f"{self.seed}-{self.mode}-order")
        opt = torch.optim.AdamW(self.param_groups(), lr=h["lr"], weight_decay=h["weight_decay"])
        warm = min(h["warmup"], max(1, steps // 10))

        def lr_at(s):
            if s < warm:
                return (s + 1) / warm
            t = (s - warm) / max(1, steps - warm)
            return h["min_lr_frac"] + (1 - h["min_lr_frac"]) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        order: list[int] = []
        rate_order: list[int] = []
        repeat_order: list[int] = []
        curve, checks, t0, done = [], [], time.time(), 0
        self.progress(f"{self.mode}: {len(fit)} clips (+{len(rate_clips)} rate-only, +{len(repeat_clips)} "
                      f"repeat-only), {steps} steps × batch "
                      f"{h['batch']}, mix {mix}, trainable {sum(p.numel() for p in self.params):,} params")
        for step in range(steps):
            ts, cs = time.time(), time.process_time()
            batch = []
            for _ in range(h["batch"]):
                kind = rng.choices(kinds, weights)[0]
                if kind == "rate":
                    if not rate_order:
                        rate_order = rate_pool[:]
                        rng.shuffle(rate_order)
                    i = rate_order.pop()
                elif kind == "repeat" and repeat_clips:
                    if not repeat_order:
                        repeat_order = repeat_pool[:]
                        rng.shuffle(repeat_order)
                    i = repeat_order.pop()
                else:
                    if not order:
                        order = list(range(len(fit)))
                        rng.shuffle(order)
                    i = order.pop()
                    if self.mode == "ref-acoustic" and kind == "own" and clips[i][0].task.name == D.RATE_TASK:
                        kind = "rate"     # the speaking_rate instruction is answered from the voice
                batch.append(self.sample(kind, i, clips[i][0], tasks, donors, rng))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=h["precision"] == "bf16"):
                loss, parts = self.loss(batch, clips)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = float(torch.nn.utils.clip_grad_norm_(self.params, h["clip"]))
            opt.step()
            sched.step()
            if h["match_text_scale"]:
                self.rescale_to_text()
            done = step + 1
            curve.append({"step": done, "loss": round(float(loss.detach()), 4), "grad_norm": round(gnorm, 3),
                          "audio_rms": round(self.audio_rms, 4),
                          "seconds": round(time.time() - ts, 2), "cpu_seconds": round(time.process_time() - cs, 2),
                          **{k: round(v, 4) for k, v in parts.items()}})
            if done % h["log_every"] == 0 or done == steps or done == 1:
                last = curve[-h["log_every"]:]
                sps = (time.time() - t0) / done
                cpu = sum(c["cpu_seconds"] for c in last) / len(last)
                agg = {k: sum(c[k] for c in last if k in c) / max(1, sum(k in c for c in last)) for k in kinds}
                self.progress(f"step {done}/{steps} loss {sum(c['loss'] for c in last) / len(last):.4f} "
                              + " ".join(f"{k} {v:.3f}" for k, v in agg.items())
                              + f" | {sps:.2f} s/step ({cpu:.1f} CPU-s), ETA {(steps - done) * sps / 60:.1f} min")
            if heldout and h["check_every"] and (done % h["check_every"] == 0 or done == steps):
                c = {"step": done, **self.check(heldout)}
                checks.append(c)
                self.progress(f"check @ {done}: {json.dumps(c)}")
            if max_minutes and (time.time() - t0) / 60 > max_minutes:
                self.progress(f"stopping at step {done}: the {max_minutes} min budget is spent")
                if heldout and h["check_every"] and (not checks or checks[-1]["step"] != done):
                    checks.append({"step": done, **self.check(heldout)})   # the saved weights' own numbers
                    self.progress(f"check @ {done}: {json.dumps(checks[-1])}")
                break
        seconds = time.time() - t0
        cpu = sum(c["cpu_seconds"] for c in curve) / max(1, len(curve))
        return {"steps": done, "seconds": round(seconds), "seconds_per_step": round(seconds / max(1, done), 3),
                "cpu_seconds_per_step": round(cpu, 3),
                "curve": curve, "checks": checks}

    # -- output -----------------------------------------------------------------------------------------------
    def trained_state(self) -> tuple[dict, dict]:
        """(projector state, tuned encoder state or {}) as detached float32 copies."""
        from harness.systems.reference.assemble import projector_weights

        enc = {}
        tower = self.model.model.audio_tower
        if self.split < len(tower.layers):
            for name, v in tower.state_dict().items():
                if name.startswith("layer_norm.") or any(name.startswith(f"layers.{i}.")
                                                          for i in range(self.split, len(tower.layers))):
                    enc[name] = v.detach().cpu().clone().contiguous()
        return projector_weights(self.model), enc


def _summary(curve: list[dict], n: int = 20) -> dict:
    if not curve:
        return {}
    def mean(rows, key):
        vals = [r[key] for r in rows if key in r]
        return round(sum(vals) / len(vals), 4) if vals else None
    keys = sorted({k for r in curve for k in r} - {"step", "seconds", "cpu_seconds", "grad_norm"})
    every = max(1, len(curve) // 25)
    points = curve[::every]
    if points[-1] is not curve[-1]:
        points = points + [curve[-1]]
    return {"first": {k: mean(curve[:n], k) for k in keys}, "last": {k: mean(curve[-n:], k) for k in keys},
            "points": points}


def save(trainer: Trainer, out_dir: Path, result: dict, data_info: dict) -> dict:
    """Weights (safetensors) + manifest.json; returns the manifest."""
    import transformers
    from safetensors.torch import save_file

    from harness.systems.reference.assemble import state_digest
    from harness.reference.backbone import _git_sha

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    proj, enc = trainer.trained_state()
    save_file(proj, str(out_dir / "projector.safetensors"))
    (out_dir / "encoder.safetensors").unlink(missing_ok=True)
    if enc:
        save_file(enc, str(out_dir / "encoder.safetensors"))
    info = trainer.info
    manifest = {
        "what": f"{trainer.mode}: trained multi_modal_projector" + (" + top encoder layers" if enc else "")
                + " of the Voxtral-class reference (harness.systems.reference.assemble)",
        "mode": trainer.mode,
        "whisper_model_bin_sha256": info["whisper_model_bin_sha256"],
        "backbone_id": info["backbone_id"], "backbone_revision": info["backbone_revision"],
        "chunk_seconds": info["chunk_seconds"], "projector_init_seed": trainer.seed,
        "projector_sha256": state_digest(proj), "encoder_sha256": state_digest(enc) if enc else None,
        "encoder_layers_tuned": sorted({int(k.split(".")[1]) for k in enc if k.startswith("layers.")}),
        "data": data_info, "prompt_version": prompts.PROMPT_VERSION, "repeat_instruction": REPEAT_INSTRUCTION,
        "code_version": _git_sha(), "seed": trainer.seed, "hyper": trainer.hyper,
        "torch": torch.__version__, "transformers": transformers.__version__, "device": _device_name(trainer.device),
        "steps": result["steps"], "seconds": result["seconds"], "seconds_per_step": result["seconds_per_step"],
        "cpu_seconds_per_step": result["cpu_seconds_per_step"],
        "curve": _summary(result["curve"]), "checks": result["checks"], "align": result.get("align"),
    }
    if trainer.hyper.get("init_from"):     # a continued run names the weights it started from
        start, _ = load_weights(Path(trainer.hyper["init_from"]))
        manifest["init_from"] = {"path": str(trainer.hyper["init_from"]), "projector_sha256": state_digest(start)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _device_name(device: torch.device) -> str:
    """What trained it, for the manifest (a GPU-trained projector does not rebuild on 2 CPU cores in 60 min)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {torch.get_num_threads()} threads"


# -- entry points -----------------------------------------------------------------------------------------------
def train(mode: str, steps: int = DEFAULT_STEPS, *, seed: int = 0, out_dir: Path | None = None,
          hyper: dict | None = None, fit=None, heldout=None, rate_clips=None, repeat_clips=None, assembled=None,
          backbone=None, max_minutes: float | None = None, device: str = "cpu",
          progress: Callable[[str], None] = print) -> dict:
    """Train ``mode`` from scratch and write it to ``out_dir`` (default ``fixtures/reference/<mode>``).

    ``fit``/``heldout``/``rate_clips``/``repeat_clips``: [(Example, Audio, transcript)] to use instead of the full data set
    (tests); by default :mod:`harness.reference.data` builds them (TTS, cached). Returns the manifest, with
    the live ``Trainer`` under the key ``"_trainer"`` (not written to disk).
    """
    out_dir = Path(out_dir) if out_dir is not None else paths.reference_weights(mode)
    trainer = Trainer(mode, seed=seed, hyper=hyper, assembled=assembled, backbone=backbone, device=device,
                      progress=progress)
    h = trainer.hyper
    if fit is None:
        ex_fit, ex_held, ex_extra = D.examples(seed, rate_extra=h["rate_extra"] if mode == "ref-acoustic" else 0)
        progress(f"data: {len(ex_fit)} fit + {len(ex_held)} held-out training sentences"
                 + (f" + {len(ex_extra)} rate-only" if ex_extra else "") + " (disjoint from every evaluation item)")
        fit = D.synthesize(ex_fit, desc="tts (fit)")
        heldout = D.synthesize(ex_held, desc="tts (held-out)")
        rate_clips = D.synthesize(ex_extra, desc="tts (rate)") if ex_extra else []
        if h["scrambled"]:
            repeat_clips = D.synthesize(D.scrambled(ex_fit, h["scrambled"], seed), desc="tts (scrambled)")
    heldout, rate_clips, repeat_clips = list(heldout or []), list(rate_clips or []), list(repeat_clips or [])
    if mode == "ref-acoustic" and heldout:   # put the rate items first so a small check sees both kinds
        rate_first = [c for c in heldout if c[0].task.name == D.RATE_TASK]
        rest = [c for c in heldout if c[0].task.name != D.RATE_TASK]
        heldout = [c for pair in zip(rate_first, rest) for c in pair] + rate_first[len(rest):] + rest[len(rate_first):]
    longest = D.check_window([*fit, *heldout, *rate_clips, *repeat_clips], trainer.chunk_seconds)
    progress(f"longest clip {longest:.2f} s (window {trainer.chunk_seconds} s)")
    groups = [[c[0] for c in g] for g in (fit, heldout, rate_clips, *([repeat_clips] if repeat_clips else []))]
    data_info = {"sha256": D.data_hash(*groups),
                 "n_fit": len(fit), "n_heldout": len(heldout), "n_rate_only": len(rate_clips),
                 "n_scrambled": len(repeat_clips),
                 "tasks": list(D.TRAIN_TASKS), "rate_range": list(D.RATE_RANGE), "longest_clip_s": round(longest, 2),
                 "tts": __import__("harness.tts", fromlist=["engine_version"]).engine_version()}
    if h["align_steps"]:       # warm start: audio embeddings regressed onto the spoken tokens (align.py)
        from harness.reference.align import align_projector

        result_align = align_projector(trainer, fit[: h["align_clips"]], steps=h["align_steps"], lr=h["align_lr"],
                                       seed=seed, layout=h["align_layout"], progress=progress)
        progress(f"align: {result_align}")
        if heldout and h["check_every"]:
            progress(f"check after align: {json.dumps(trainer.check(heldout))}")
    result = trainer.fit(steps, fit, heldout, rate_clips, repeat_clips=repeat_clips, max_minutes=max_minutes)
    if h["align_steps"]:
        result["align"] = result_align
    manifest = save(trainer, out_dir, result, data_info)
    progress(f"wrote {out_dir} ({result['steps']} steps, {result['seconds_per_step']} s/step)")
    return {**manifest, "_trainer": trainer}


def train_ref_cascade(steps: int = DEFAULT_STEPS, seed: int = 0, **kw) -> dict:
    return train("ref-cascade", steps, seed=seed, **kw)


def train_ref_acoustic(steps: int = DEFAULT_STEPS, seed: int = 0, *, unfreeze_encoder_layers: int = 0, **kw) -> dict:
    """As ref-cascade plus the speaking-rate objective. If the projector alone cannot hear the rate, pass
    ``unfreeze_encoder_layers`` (e.g. 1–2: the top Whisper layers + final LayerNorm train too, saved to
    ``encoder.safetensors``, ~1.8M params a layer); default 0 (projector only)."""
    hyper = dict(kw.pop("hyper", None) or {}, unfreeze_encoder_layers=unfreeze_encoder_layers)
    return train("ref-acoustic", steps, seed=seed, hyper=hyper, **kw)
