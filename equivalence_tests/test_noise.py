"""Claim 4: under noise (white, babble; clean → 0 dB) the speech-LLM's advantage over its cascade shrinks or reverses."""


def test_noise(noise_claim, judge):
    judge(noise_claim)
