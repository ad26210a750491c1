"""Judges: (instruction, response) -> judgment text and polarity, or a recorded failure.

A failed judge call is never a judgment: it carries status "failed" and its reason, and
is left out of training. Heavy clients (openai, transformers) load lazily.
"""
