"""Ray actors where heavy work runs: generators (vLLM or HF engines) and their placement.

Actors are thin facades over engines; engines know nothing of Ray.
"""
