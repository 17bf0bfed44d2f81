"""Claim 2: the transcript's words surface in the backbone's layers at the audio positions (logit lens)."""


def test_text_emergence(emergence_claim, judge):
    judge(emergence_claim)
