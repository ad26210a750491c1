"""AlpacaEval's own annotators, through cutloop's transport, against the local
OpenAI-compatible test server."""

import math

import pytest

from judge.alpaca_eval_annotator import (
    AlpacaEvalAnnotator,
    AlpacaEvalEndpoint,
    alpaca_eval,
    annotator_config,
)
from judge.spending import Spending
from tests.judge.fake_openai import FakeOpenAI
from tests.judge.requests import ITEMS

KEY = "sk-test-annotator-0123456789"


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setenv("CUTLOOP_TEST_OPENAI_KEY", KEY)
    with FakeOpenAI() as server:
        yield (
            server,
            AlpacaEvalEndpoint(
                base_url=server.base_url,
                api_key_env="CUTLOOP_TEST_OPENAI_KEY",
                max_retries=1,
                timeout_s=2,
            ),
        )


def test_alpaca_eval_gpt4_ranks_either_order_and_keeps_failures(endpoint):
    server, settings = endpoint
    results = AlpacaEvalAnnotator("alpaca_eval_gpt4", settings).annotate(ITEMS)
    assert [r.preference for r in results] == [2.0, 1.0, 1.0, None, None]
    assert results[3].error.startswith("unreadable reply")
    assert "HTTP 500" in results[4].error and KEY not in results[4].error
    sent = [r.content for r in server.requests]
    assert all("ranks models by the quality of their answers" in c for c in sent)
    # alpaca_eval shows the policy's output first for some instructions (seeded)
    first_shown = [
        c.index("a policy answer") < c.index("a reference answer")
        for c in sent
        if "a policy answer" in c
    ]
    assert any(first_shown) and not all(first_shown)


def test_weighted_annotator_reads_logprobs(endpoint):
    server, settings = endpoint
    results = AlpacaEvalAnnotator("weighted_alpaca_eval_gpt4_turbo", settings).annotate(ITEMS)
    preferences = [r.preference for r in results]
    assert preferences[:3] == pytest.approx([1.8, 1.2, 1.3])  # P(policy better) + 1
    assert preferences[3] is None and preferences[4] is None
    assert {r.content.count("model_identifier") for r in server.requests} == {2}


def test_replies_are_cached_so_no_annotation_is_paid_twice(endpoint, tmp_path):
    server, settings = endpoint
    cache = tmp_path / "annotation-cache.jsonl"
    first = AlpacaEvalAnnotator("alpaca_eval_gpt4", settings, cache).annotate(ITEMS)
    paid = len(server.requests)
    again = AlpacaEvalAnnotator("alpaca_eval_gpt4", settings, cache).annotate(ITEMS)
    assert [r.preference for r in again] == [r.preference for r in first]
    # only the failed call (a 500 every time) is made again: failures are never cached
    assert len(server.requests) - paid == 2  # one attempt and one retry
    assert all("[[fault:500:always]]" in r.content for r in server.requests[paid:])


def test_the_endpoint_model_replaces_the_configs(endpoint):
    _, settings = endpoint
    annotator = AlpacaEvalAnnotator("alpaca_eval_gpt4", settings.model_copy(update={"model": "x"}))
    assert annotator.model == "x" and "alpaca_eval" in annotator.version
    assert AlpacaEvalAnnotator("alpaca_eval_gpt4", settings).model == "gpt-4"


@pytest.mark.parametrize(
    ("name", "message"),
    [("no_such_annotator", "unknown alpaca_eval annotator"), ("claude", "OpenAI-compatible")],
)
def test_unusable_annotators_are_refused_by_name(name, message):
    with pytest.raises(ValueError, match=message):
        annotator_config(name)


def test_importing_alpaca_eval_leaves_logging_as_it_was():
    import logging

    level = logging.getLogger().level
    alpaca_eval.cache_clear()
    alpaca_eval()
    assert logging.getLogger().level == level
    assert not math.isnan(level)


def test_the_annotation_budget_holds_across_restarts(endpoint, tmp_path):
    server, settings = endpoint
    limited = settings.model_copy(update={"max_calls": 2})
    spent = tmp_path / "annotation-spending.jsonl"
    first = AlpacaEvalAnnotator("alpaca_eval_gpt4", limited, spending=Spending(spent))
    assert [r.preference for r in first.annotate(ITEMS[:2])] == [2.0, 1.0]
    restarted = AlpacaEvalAnnotator("alpaca_eval_gpt4", limited, spending=Spending(spent))
    (refused,) = restarted.annotate(ITEMS[2:3])
    assert refused.preference is None and "budget exhausted: max_calls=2" in refused.error
    assert len(server.requests) == 2
