"""An answer cut at the tokens CUT flagged, for display: the policy's tokenizer splits the
answer exactly as training did (the response's tokens, then EOS), and its offsets map
each flagged position back to the text."""

from __future__ import annotations

import logging
from functools import lru_cache

from api.schemas import Segment

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def policy_tokenizer(policy: str):
    """The campaign policy's tokenizer, or None when it cannot be loaded here."""
    from transformers import AutoTokenizer

    from orchestrator.models import BUNDLED_MODELS
    from store.home import cutloop_home

    where = str(cutloop_home() / "models" / policy) if policy in BUNDLED_MODELS else policy
    try:  # never a download while answering a request
        return AutoTokenizer.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError):
        logger.warning("no tokenizer for %s here: flagged tokens shown without text", policy)
        return None


def segments(tokenizer, text: str, positions: list[int], ratios: list[float]) -> list[Segment]:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    ratio_at = dict(zip(positions, ratios, strict=True))
    pieces: list[Segment] = []
    cursor = 0
    for position, (start, end) in enumerate(offsets):
        if position not in ratio_at:
            continue
        if start > cursor:
            pieces.append(Segment(text=text[cursor:start], flagged=False))
        start = max(start, cursor)  # byte-level tokens of one character share offsets
        pieces.append(Segment(text=text[start:end], flagged=True, ratio=ratio_at[position]))
        cursor = max(cursor, end)
    if cursor < len(text):
        pieces.append(Segment(text=text[cursor:], flagged=False))
    if len(offsets) in ratio_at:  # the end-of-sequence token closes every response
        eos = tokenizer.eos_token or "</s>"
        pieces.append(Segment(text=eos, flagged=True, ratio=ratio_at[len(offsets)]))
    return pieces
