"""Why a round failed: one readable line for tables and the command's exit message,
and the whole story (every message line, the traceback) for the store."""

from __future__ import annotations

import re
import traceback

MAX_LINE = 300
NODE_MEMORY = re.compile(r"was ([\d.]+GB) used / ([\d.]+GB) limit")


def killed_for_memory(error: BaseException) -> bool:
    from ray.exceptions import OutOfMemoryError

    return isinstance(error, OutOfMemoryError)


def one_line(error: BaseException, stage: str) -> str:
    """The reason a person reads: a memory kill says what to change; anything else is
    the first line of the worker's own exception."""
    if killed_for_memory(error):
        found = NODE_MEMORY.search(str(error))
        usage = f" (node memory {found[1]} of {found[2]})" if found else ""
        return (
            f"a worker was killed by Ray's memory monitor during {stage}{usage}: lower "
            "cut.max_tokens_per_micro_batch or turn on cut.gradient_checkpointing, "
            "or free memory for the campaign"
        )
    cause = getattr(error, "cause", None) or error  # a Ray task error: the worker's own
    first = next((line for line in str(cause).splitlines() if line.strip()), "")
    line = f"{type(cause).__name__}: {first.strip()}"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def full_detail(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))
