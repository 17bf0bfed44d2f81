"""The project's reference speech-LLMs: built from packaged weights (Whisper tiny.en converted from CTranslate2, the
offline SmolLM2 backbone) and loaded like any other system, through the native Voxtral adapter.

- ``whisper_ct2`` — the packaged faster-whisper encoder as a transformers ``WhisperEncoder``;
- ``assemble`` — encoder + projector + backbone in transformers' ``VoxtralForConditionalGeneration``;
- ``frontends`` — the known-answer front ends (``ref-transcriber``, ``ref-prosody``);
- ``trained`` — a trained reference from its committed weights (``ref-cascade``, ``ref-acoustic``, ``ref-prosody``).

Training them is a tool on top (``harness.reference``, ``python -m harness.reference``); nothing here imports it.
"""
