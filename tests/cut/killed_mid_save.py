"""Trains the resume test's run with a state saved every step and SIGKILLs itself while
writing step 3's state (its weights file half written): what a crash mid-save leaves.
Usage: python -m tests.cut.killed_mid_save STATE_DIR"""

import os
import signal
import sys
from pathlib import Path

from safetensors.torch import save_file

import cut.checkpoint
from cut.trainer import train_cut
from tests.cut.toys import RESUMED_CONFIG, RESUMED_DATA, tiny_model
from tests.tiny_models import char_tokenizer

saves = 0


def save_then_die_on_the_third(tensors, path, *args, **kwargs):
    global saves
    saves += 1
    save_file(tensors, path, *args, **kwargs)
    if saves == 3:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    cut.checkpoint.save_file = save_then_die_on_the_third  # the disk write the kill cuts
    tokenizer = char_tokenizer()
    train_cut(tiny_model(tokenizer), tokenizer, RESUMED_DATA, RESUMED_CONFIG, state_dir=sys.argv[1])
