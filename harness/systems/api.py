"""API speech-LLMs (Gemini): behaviour only — no logits, no hidden states, no matched cascade.

The SDK (google-genai) is imported lazily so the suite installs and runs without it; the key comes from the
environment variable the spec names. Closed tasks are answered by asking for one option and mapping the reply
onto the options (exact match, else the first option the reply names), with no scores.
"""
from __future__ import annotations

import io
import os

import numpy as np
from scipy.io import wavfile

from harness import prompts
from harness.audio import SAMPLE_RATE, Audio
from harness.systems.base import Answer
from harness.tasks import Item, Task, normalize_answer

AUDIO_SLOT = "[the audio clip]"


def pick_option(reply: str, options) -> str:
    norm = normalize_answer(reply)
    for o in options:
        if normalize_answer(o) == norm:
            return o
    for o in options:
        if normalize_answer(o) and normalize_answer(o) in norm:
            return o
    return reply.strip()


class APISpeechLLM:
    needs_audio = True

    def __init__(self, spec, *, client=None):
        self.spec, self.name = spec, spec.id
        self.fingerprint = f"api[{spec.repo}@{spec.revision or 'unversioned'}]"
        if client is None:
            key = os.environ.get(spec.api_key_env or "")
            if not key:
                raise RuntimeError(f"{spec.id}: set {spec.api_key_env} to use the API")
            from google import genai  # lazy: optional dependency (pip install google-genai)
            client = genai.Client(api_key=key)
        self.client = client

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        from google.genai import types

        buf = io.BytesIO()
        wavfile.write(buf, SAMPLE_RATE, (np.asarray(audio.samples) * 32767).astype(np.int16))
        turns = prompts.messages(task, item, AUDIO_SLOT)
        text = "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)
        reply = self.client.models.generate_content(
            model=self.spec.repo,
            contents=[text, types.Part.from_bytes(data=buf.getvalue(), mime_type="audio/wav")],
            config=types.GenerateContentConfig(temperature=0.0)).text or ""
        choice = reply.strip() if task.kind == "open_qa" else pick_option(reply, item.options)
        return Answer(item.id, choice, task.is_correct(item, choice), {}, None)
