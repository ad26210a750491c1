"""The judge's HTTP calls (judge/chat_post.py): what is retried and after how long, the
proxy the environment names, and the test server checked against the real `openai`
client, so a judge that reads the server's replies reads the API's."""

import socket
import time
from email.utils import formatdate

import pytest
from multidict import CIMultiDict

from judge.base import JudgmentStatus
from judge.chat_post import backoff_s, retry_after_s
from judge.openai_client import environment_proxy
from judge.openai_judge import OpenAIJudge, OpenAIJudgeConfig
from tests.judge.fake_openai import FakeOpenAI
from tests.judge.requests import ask


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
        ({"retry-after": "0"}, None),
        ({"retry-after": "3600"}, None),  # longer than a call should wait: backoff instead
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_or_milliseconds(headers, wait):
    assert retry_after_s(CIMultiDict(headers)) == wait


def test_retry_after_as_a_date():
    wait = retry_after_s(CIMultiDict({"Retry-After": formatdate(time.time() + 30)}))
    assert wait is not None and 28 <= wait <= 31


def test_backoff_doubles_to_eight_seconds_less_up_to_a_quarter():
    for retry, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        assert 0.75 * ceiling <= backoff_s(retry) <= ceiling


def test_the_proxy_comes_from_the_environment_unless_the_host_is_excluded(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "judge.internal")
    assert environment_proxy("https://api.openai.com/v1/chat/completions") == (
        "http://proxy.example:3128"
    )
    assert environment_proxy("https://judge.internal/v1/chat/completions") is None
    assert environment_proxy("http://127.0.0.1:8000/v1/chat/completions") is None  # no HTTP_PROXY


def test_the_environment_names_the_endpoint_organization_and_project(monkeypatch):
    """What the OpenAI client reads from the environment when `base_url` is null."""
    monkeypatch.setenv("CUTLOOP_TEST_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-2")
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        (result,) = OpenAIJudge(OpenAIJudgeConfig(api_key_env="CUTLOOP_TEST_KEY")).judge(ask("1"))
    assert result.status == JudgmentStatus.OK
    (sent,) = server.requests
    assert sent.headers["openai-organization"] == "org-1"
    assert sent.headers["openai-project"] == "proj-2"
    assert sent.authorization == "Bearer sk-x"


def test_a_refused_connection_is_a_connection_error_after_the_retries(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    monkeypatch.setenv("CUTLOOP_TEST_KEY", "sk-x")
    config = OpenAIJudgeConfig(
        base_url=f"http://127.0.0.1:{port}/v1", api_key_env="CUTLOOP_TEST_KEY", max_retries=1
    )
    (result,) = OpenAIJudge(config).judge(ask("56"))
    assert result.status == JudgmentStatus.FAILED
    assert result.error.startswith("connection error: ClientConnectorError")


def test_the_test_server_speaks_the_api_the_openai_client_reads(monkeypatch):
    from openai import OpenAI

    monkeypatch.setenv("CUTLOOP_TEST_KEY", "sk-x")
    with FakeOpenAI() as server:
        client = OpenAI(base_url=server.base_url, api_key="sk-x", max_retries=0)
        completion = client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "56 [[good]]"}], logprobs=True
        )
        (judge_result,) = OpenAIJudge(
            OpenAIJudgeConfig(base_url=server.base_url, api_key_env="CUTLOOP_TEST_KEY")
        ).judge(ask("56 [[good]]"))
    assert completion.choices[0].message.content == judge_result.text == "Perfect."
    assert completion.usage.prompt_tokens > 0 and judge_result.tokens_in > 0
