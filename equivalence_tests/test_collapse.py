"""Claim 3: erasing the text concept (LEACE) collapses accuracy; a rank-matched random erasure does not."""


def test_text_erasure_collapses(collapse_claim, judge):
    judge(collapse_claim)
