"""Append-only JSON-lines files survive a kill mid-append."""

import subprocess
import sys
from pathlib import Path

from judge.base import JudgmentStatus
from judge.cache import JudgmentCache
from judge.jsonlines import JsonLinesAppender, append_json_line, read_json_lines
from judge.openai_judge import OpenAIJudge, OpenAIJudgeConfig
from judge.spending import Spending
from tests.judge.fake_openai import FakeOpenAI
from tests.judge.requests import ask


def test_a_line_torn_by_a_kill_is_dropped_and_the_next_append_starts_clean(tmp_path):
    path = tmp_path / "log.jsonl"
    append_json_line(path, {"n": 1})
    append_json_line(path, {"n": 2})
    with path.open("a") as handle:
        handle.write('{"n": 3, "te')  # what a SIGKILL mid-write leaves
    assert read_json_lines(path) == [{"n": 1}, {"n": 2}]
    append_json_line(path, {"n": 4})
    assert read_json_lines(path) == [{"n": 1}, {"n": 2}, {"n": 4}]
    assert read_json_lines(tmp_path / "absent.jsonl") == []


def test_a_judge_restarts_on_a_torn_cache_and_spending_file(tmp_path):
    cache, spent = tmp_path / "cache.jsonl", tmp_path / "spending.jsonl"
    with FakeOpenAI() as server:
        config = OpenAIJudgeConfig(base_url=server.base_url, api_key_env="NO_KEY", max_calls=3)
        OpenAIJudge(config, JudgmentCache(cache), Spending(spent)).judge(ask("1", "2"))
        for path in (cache, spent):
            with path.open("a") as handle:
                handle.write('{"key": "torn')
        restarted = OpenAIJudge(config, JudgmentCache(cache), Spending(spent))
        results = restarted.judge(ask("1", "2", "3", "4"))
        assert [r.cached for r in results[:2]] == [True, True]
        assert [r.status for r in results[2:]] == [JudgmentStatus.OK, JudgmentStatus.FAILED]
        assert "budget exhausted: max_calls=3" in results[3].error
        assert len(server.requests) == 3


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from judge.jsonlines import JsonLinesAppender
appender = JsonLinesAppender(Path(sys.argv[1]))
for n in range(1000):
    appender.append({"n": n, "text": "é" * 50})
os.kill(os.getpid(), signal.SIGKILL)  # no close, no sync, no exit handlers
"""


def test_every_appended_line_is_in_the_file_after_its_writer_is_killed(tmp_path):
    path = tmp_path / "spending.jsonl"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=root)
    assert done.returncode == -9
    assert read_json_lines(path) == [{"n": n, "text": "é" * 50} for n in range(1000)]
    appender = JsonLinesAppender(path)  # a restart appends after them
    appender.append({"n": 1000})
    appender.sync()
    assert read_json_lines(path)[-1] == {"n": 1000} and len(read_json_lines(path)) == 1001
