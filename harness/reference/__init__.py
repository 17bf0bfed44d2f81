"""Training the reference speech-LLMs and the offline backbone's task adapter: a tool on top of the suite
(``python -m harness.reference tune-backbone | train | fit-prosody | evaluate``).

The models themselves — assembly, front ends, loading committed weights — are ``harness.systems.reference``; the
suite loads them from there and never imports this package.
"""
