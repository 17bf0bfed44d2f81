"""Claim 1: the speech-LLM answers like its matched cascade (κ, McNemar after FDR) — or diverges where expected."""


def test_agreement(agreement_claim, judge):
    judge(agreement_claim)
