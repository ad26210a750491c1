import logging

import pytest
from sqlalchemy import select

from judge.base import JudgmentStatus
from judge.cache import JudgmentCache
from judge.openai_judge import PAPER_SYSTEM_PROMPT, OpenAIJudge, OpenAIJudgeConfig
from judge.spending import Spending
from tests.judge.fake_openai import FakeOpenAI
from tests.judge.requests import ask

KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def server():
    with FakeOpenAI(retry_after_s=0.3) as fake:
        yield fake


@pytest.fixture
def config(server, monkeypatch):
    monkeypatch.setenv("CUTLOOP_TEST_OPENAI_KEY", KEY)
    return OpenAIJudgeConfig(
        base_url=server.base_url,
        api_key_env="CUTLOOP_TEST_OPENAI_KEY",
        timeout_s=0.5,
        max_retries=3,
        concurrency=8,
    )


def test_judgments_and_polarity_with_the_papers_prompt(server, config):
    results = OpenAIJudge(config).judge(ask("56 [[good]]", "54"))
    assert [r.status for r in results] == [JudgmentStatus.OK] * 2
    assert [r.polarity for r in results] == ["positive", "negative"]
    assert results[1].text.startswith("The answer is wrong")
    assert all(r.tokens_in > 0 and r.judge_model == "gpt-4" for r in results)
    assert all(PAPER_SYSTEM_PROMPT in q.content for q in server.requests)
    assert all(q.authorization == f"Bearer {KEY}" for q in server.requests)


def test_one_connection_serves_every_batch_of_a_judge(server, config):
    """The judge stage calls its judge once per commit: each call after the first goes
    on the connection the first opened, not on a client made again."""
    judge = OpenAIJudge(config.model_copy(update={"concurrency": 1}))
    for batch in range(3):
        judge.judge(ask(f"batch {batch}: 56 [[good]]", f"batch {batch}: 54"))
    assert len(server.requests) == 6 and len({q.peer for q in server.requests}) == 1


def test_transient_faults_are_retried_until_success(server, config):
    results = OpenAIJudge(config).judge(ask("a [[fault:500:2]]", "b [[fault:429:1]]"))
    assert [r.status for r in results] == [JudgmentStatus.OK] * 2
    by_fault = {
        kind: [q.at for q in server.requests if kind in q.content] for kind in ("500", "429")
    }
    assert len(by_fault["500"]) == 3 and len(by_fault["429"]) == 2
    assert by_fault["429"][1] - by_fault["429"][0] >= 0.3 * 0.9  # Retry-After honoured


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        ("[[fault:500:always]]", "HTTP 500 Internal Server Error"),
        ("[[fault:hang:always]]", "timed out after 0.5 s"),
        ("[[fault:empty:always]]", "no choices"),
        ("[[fault:badjson:always]]", "unreadable reply (not JSON)"),
        ("[[fault:badbytes:always]]", "HTTP 502 Bad Gateway: \ufffd\ufffd gateway"),
    ],
)
def test_permanent_failures_are_recorded_not_raised(server, config, marker, reason):
    results = OpenAIJudge(config).judge(ask(f"x {marker}", "56 [[good]]"))
    failed, fine = results
    assert failed.status == JudgmentStatus.FAILED and reason in failed.error
    assert failed.text is None and failed.polarity is None  # never a negative judgment
    assert fine.status == JudgmentStatus.OK


def test_a_restarted_batch_pays_for_nothing_twice(server, config, tmp_path):
    batch = ask("1 [[good]]", "2", "3", "4 [[fault:500:always]]")
    first = OpenAIJudge(config, JudgmentCache(tmp_path / "cache.jsonl")).judge(batch)
    paid = len(server.requests)
    again = OpenAIJudge(config, JudgmentCache(tmp_path / "cache.jsonl")).judge(batch)
    new_requests = server.requests[paid:]
    assert {q.content for q in new_requests} == {server.requests[-1].content}  # only the failure
    assert [r.cached for r in again[:3]] == [True] * 3
    assert [r.text for r in again[:3]] == [r.text for r in first[:3]]
    assert again[3].status == JudgmentStatus.FAILED


def test_budget_stops_judging_cleanly(server, config):
    judge = OpenAIJudge(config.model_copy(update={"max_calls": 3, "concurrency": 1}))
    results = judge.judge(ask("1", "2", "3", "4", "5"))
    assert [r.status for r in results].count(JudgmentStatus.OK) == 3
    assert all("budget exhausted: max_calls=3" in r.error for r in results[3:])
    assert len(server.requests) == 3


@pytest.mark.parametrize("concurrency", [1, 8])
def test_the_call_budget_holds_across_batches_and_restarts(server, config, tmp_path, concurrency):
    limited = config.model_copy(update={"max_calls": 5, "concurrency": concurrency})
    spent = tmp_path / "spending.jsonl"
    judge = OpenAIJudge(limited, spending=Spending(spent))
    assert [r.status for r in judge.judge(ask("1", "2", "3"))] == [JudgmentStatus.OK] * 3
    second = judge.judge(ask("4", "5", "6"))  # the same judge, a later batch: 2 calls left
    assert [r.status for r in second].count(JudgmentStatus.OK) == 2
    restarted = OpenAIJudge(limited, spending=Spending(spent))  # a new process, same file
    third = restarted.judge(ask("7", "8"))
    assert all("budget exhausted: max_calls=5" in r.error for r in third)
    assert len(server.requests) == 5


def test_calls_in_flight_bound_the_token_budgets_overshoot(config):
    concurrency, budget = 4, 200
    with FakeOpenAI(latency_s=0.2) as slow:  # every call in flight at once
        limited = config.model_copy(
            update={"base_url": slow.base_url, "max_total_tokens": budget,
                    "concurrency": concurrency}
        )  # fmt: skip
        results = OpenAIJudge(limited).judge(ask(*(f"answer {i} " * 20 for i in range(40))))
    paid = [r for r in results if r.status == JudgmentStatus.OK]
    tokens = [r.tokens_in + r.tokens_out for r in paid]
    assert len(set(tokens)) <= 2 and max(tokens) < budget  # ~ the same price per call
    # the last call let through saw less than the budget spent, with at most
    # `concurrency` calls (itself included) not yet counted
    spent = sum(tokens)
    assert budget <= spent < budget + concurrency * max(tokens)
    assert len(slow.requests) == len(paid) < 40
    assert all("budget exhausted: max_total_tokens=200" in r.error
               for r in results if r.status == JudgmentStatus.FAILED)  # fmt: skip


def test_missing_key_is_named():
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):
        OpenAIJudge(OpenAIJudgeConfig(api_key_env="NO_SUCH_KEY_VAR"))


def test_the_key_reaches_no_log_result_or_stored_row(server, config, caplog, sessions):
    from store.models import Judgment
    from store.results import add_judgments
    from tests.store.factories import seeded_generations

    caplog.set_level(logging.DEBUG)
    results = OpenAIJudge(config).judge(ask("x [[fault:echo:always]]", "y", "z [[good]]"))
    assert "***" in results[0].error and KEY not in results[0].error
    with sessions.begin() as s:
        _, _, gen_ids = seeded_generations(s)
        rows = [
            {
                "generation_id": g,
                "judge_name": r.judge_name,
                "judge_model": r.judge_model,
                "status": r.status,
                "text": r.text,
                "polarity": r.polarity,
                "error": r.error,
                "latency_s": r.latency_s,
                "tokens_in": r.tokens_in,
                "tokens_out": r.tokens_out,
                "cost_usd": None,
            }
            for g, r in zip(gen_ids, results, strict=True)
        ]
        add_judgments(s, rows)
    with sessions() as s:
        stored = s.execute(select(Judgment.text, Judgment.error)).all()
    assert len(stored) == 3 and all(KEY not in str(row) for row in stored)
    assert KEY not in caplog.text
    assert all(KEY not in str(record.args) for record in caplog.records)


def test_the_judges_quotes_become_spans_of_the_answer_cached_or_not(server, config, tmp_path):
    from judge.openai_judge import QUOTE_REQUEST

    answers = ("So 7 x 8 =\n54. [[quote:7_x_8_=_54]]", "It is 54. [[quote:7_x_9]]")
    cache = tmp_path / "cache.jsonl"
    first = OpenAIJudge(config, JudgmentCache(cache)).judge(ask(*answers))
    assert [answers[0][a:b] for a, b in first[0].spans] == ["7 x 8 =\n54"]
    assert first[1].spans == ()  # quoted, but not in the answer: ignored
    assert all(QUOTE_REQUEST in q.content for q in server.requests)
    again = OpenAIJudge(config, JudgmentCache(cache)).judge(ask(*answers))
    assert [r.cached for r in again] == [True, True] and len(server.requests) == 2
    assert [r.spans for r in again] == [r.spans for r in first]
