import socket
import subprocess
import sys
from pathlib import Path

import psutil

from orchestrator.config import same_campaign
from orchestrator.driver import runner_identity, runner_is_gone
from store.home import campaign_identity, claim_directory
from tests.orchestrator.campaigns import tiny_campaign


def test_a_runner_is_gone_only_when_its_process_on_this_machine_is():
    assert not runner_is_gone(runner_identity())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = int(psutil.Process(child.pid).create_time())
    child.wait(timeout=60)
    assert runner_is_gone(f"{socket.gethostname()}:{child.pid}:{started}")
    assert not runner_is_gone(f"another-host:{child.pid}:{started}")  # its lease decides


def test_a_directory_left_by_another_campaign_of_that_name_is_moved_aside(tmp_path):
    directory = tmp_path / "campaigns" / "demo"
    (directory / "rounds" / "1" / "train-state").mkdir(parents=True)
    claim_directory(directory, campaign_identity("sqlite:///a.db", 1))
    assert list(directory.iterdir()) == [directory / "campaign-id"]  # old files moved
    (aside,) = tmp_path.joinpath("campaigns").glob("demo.replaced-*")
    assert (aside / "rounds" / "1" / "train-state").is_dir()
    (directory / "checkpoints").mkdir()
    claim_directory(directory, campaign_identity("sqlite:///a.db", 1))  # its own: kept
    assert (directory / "checkpoints").is_dir()
    assert campaign_identity("postgresql://u:secret@h/db", 1).count("secret") == 0


def test_settings_stored_before_a_field_existed_are_thesame_campaign():
    now = tiny_campaign("old", Path("policy")).model_dump(mode="json", by_alias=True)
    stored = {k: v for k, v in now.items() if k not in ("placement", "checkpoints")}
    assert same_campaign(stored, now)
    assert same_campaign({**stored, "rounds": 1}, now)  # more rounds asked: same campaign
    assert not same_campaign({**stored, "prompts_per_round": 7}, now)
    assert not same_campaign({**stored, "no_such_setting": 1}, now)
