"""The API's reads over a finished tiny campaign, on SQLite and PostgreSQL: what it
returns is checked against the store (read independently) and against the tokenizer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from store.engine import make_engine, session_factory
from store.models import (
    EvalRun,
    FlaggedTokens,
    Generation,
    Judgment,
    Round,
    RoundStage,
    Stage,
    TrainingRun,
    TrainingStep,
)
from tests.api.served import FINISHED

BASE = f"/api/v1/campaigns/{FINISHED}"


@pytest.fixture
def db(finished_store):
    engine = make_engine(finished_store.database_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_campaigns_and_rounds_are_those_of_the_store(client, db):
    (campaign,) = client.get("/api/v1/campaigns").json()
    assert campaign["name"] == FINISHED and campaign["status"] == "done"
    assert (campaign["rounds"], campaign["rounds_done"], campaign["current_round"]) == (2, 2, None)
    assert client.get(BASE).json() == campaign
    rounds = client.get(f"{BASE}/rounds").json()
    assert [r["index"] for r in rounds] == [0, 1, 2]
    for row in rounds[1:]:
        round_id = db.scalar(select(Round.id).where(Round.index == row["index"]))
        generations = select(Generation.id).where(Generation.round_id == round_id)
        negative = db.scalar(
            select(func.count())
            .select_from(Judgment)
            .where(Judgment.generation_id.in_(generations), Judgment.polarity == "negative")
        )
        last_loss = db.scalar(
            select(TrainingStep.loss)
            .join(TrainingRun)
            .where(TrainingRun.round_id == round_id)
            .order_by(TrainingStep.step.desc())
            .limit(1)
        )
        assert row["negative"] == negative > 0
        assert row["final_loss"] == pytest.approx(last_loss)
        assert row["stage"] == "done" and row["win_rate"] is not None


def test_a_round_has_its_stage_timings_training_steps_and_checkpoint(client, db):
    detail = client.get(f"{BASE}/rounds/2").json()
    stages = [s["stage"] for s in detail["stages"]]
    assert stages == [s.value for s in Stage if s != Stage.DONE]
    assert all(s["seconds"] >= 0 for s in detail["stages"])
    steps = db.scalar(
        select(func.count()).select_from(TrainingStep).join(TrainingRun).join(Round)
        .where(Round.index == 2)
    )  # fmt: skip
    assert len(detail["training_steps"]) == detail["steps"] == steps > 0
    assert detail["checkpoint"]["version"] == 2 and detail["checkpoint"]["parent_version"] == 1
    assert client.get(f"{BASE}/rounds/0").json()["checkpoint"] is None


def test_judgments_page_by_cursor_and_filter_by_polarity_status_and_text(client):
    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after is not None else {})}
        page = client.get(f"{BASE}/rounds/1/judgments", params=params).json()
        seen += [j["id"] for j in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    everything = client.get(f"{BASE}/rounds/1/judgments", params={"limit": 100}).json()["data"]
    assert seen == [j["id"] for j in everything] and len(seen) == len(set(seen)) == 6

    negative = client.get(f"{BASE}/rounds/1/judgments", params={"polarity": "negative"}).json()
    expected = client.get(f"{BASE}/rounds/1").json()["negative"]
    assert len(negative["data"]) == expected and {j["polarity"] for j in negative["data"]} == {
        "negative"
    }
    assert (
        client.get(f"{BASE}/rounds/1/judgments", params={"status": "failed"}).json()["data"] == []
    )

    word = everything[0]["text"].split()[1]
    found = client.get(f"{BASE}/rounds/1/judgments", params={"q": word.upper()}).json()["data"]
    assert found and all(word.lower() in (j["text"] + j["answer"]).lower() for j in found)
    assert len(found) < len(everything) or all(word in j["text"] for j in everything)
    # LIKE's wildcards are matched literally
    assert client.get(f"{BASE}/rounds/1/judgments", params={"q": "%"}).json()["data"] == [
        j for j in everything if "%" in j["text"] + j["answer"]
    ]


def test_an_answer_shows_the_tokens_cut_flagged_with_their_ratios(client, db):
    flags = db.scalars(select(FlaggedTokens)).all()
    partly = next(f for f in flags if f.positions)
    answer = client.get(f"{BASE}/answers/{partly.generation_id}").json()
    assert [j["polarity"] for j in answer["judgments"]] == ["negative"]
    (report,) = [r for r in answer["flagged_tokens"] if r["positions"] == partly.positions]
    assert report["ratios"] == pytest.approx(partly.ratios) and report["flagged"] == len(
        partly.positions
    )
    # one character per token: position p is the answer's p-th character, then EOS
    text = answer["text"]
    expected = [text[p] if p < len(text) else "</s>" for p in partly.positions]
    flagged = [s for s in report["segments"] if s["flagged"]]
    assert [s["text"] for s in flagged] == expected
    assert [s["ratio"] for s in flagged] == pytest.approx(partly.ratios)
    assert all(r > 1.0 for r in partly.ratios)  # λ = 1: flagged where p_al / p_mis > 1
    joined = "".join(s["text"] for s in report["segments"])
    assert joined == text + ("</s>" if len(text) in partly.positions else "")
    assert any(not s["flagged"] for s in report["segments"])


def test_the_evaluation_table_has_every_metric_the_evaluate_stage_stored(client, db):
    table = client.get(f"{BASE}/evaluation").json()
    assert [row["round"] for row in table] == [0, 1, 2]
    internal = {"id", "round_id", "created_at"}
    for row, run in zip(table, db.scalars(select(EvalRun).order_by(EvalRun.id)), strict=True):
        for column in EvalRun.__table__.columns:
            if column.key in internal or column.key == "finished_at":
                continue
            assert row[column.key] == getattr(run, column.key), column.key


def test_checkpoints_are_the_published_versions(client):
    checkpoints = client.get(f"{BASE}/checkpoints").json()
    assert [(c["version"], c["parent_version"]) for c in checkpoints] == [(1, None), (2, 1)]
    assert all(len(c["sha256"]) == 64 for c in checkpoints)


def test_prometheus_metrics_count_rounds_stages_judge_calls_and_tokens(client, db):
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}

    def value(family: str, sample: str, **labels: str) -> float:
        return next(
            s.value for s in families[family].samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )  # fmt: skip

    assert value("cutloop_rounds", "cutloop_rounds", campaign=FINISHED, status="done") == 3
    judgments = db.scalar(select(func.count()).select_from(Judgment))
    assert value("cutloop_judge_calls", "cutloop_judge_calls_total", status="ok") == judgments
    tokens = db.scalar(select(func.sum(Generation.completion_tokens)))
    assert value("cutloop_generated_tokens", "cutloop_generated_tokens_total") == tokens
    trained = db.scalar(
        select(func.count()).select_from(RoundStage)
        .where(RoundStage.stage == Stage.TRAIN, RoundStage.finished_at.is_not(None))
    )  # fmt: skip
    count = value("cutloop_stage_duration_seconds", "cutloop_stage_duration_seconds_count",
                  stage="train")  # fmt: skip
    assert count == trained


def test_health_reports_the_database_and_ray(client):
    assert client.get("/health").json() | {"version": None} == {
        "status": "ok", "database": "ok", "ray": "connected", "version": None,
    }  # fmt: skip


def test_unknown_ids_are_404s_that_name_them(client):
    for path, named in [
        ("/api/v1/campaigns/nope", "'nope'"),
        ("/api/v1/campaigns/nope/rounds", "'nope'"),
        (f"{BASE}/rounds/9", "round 9"),
        (f"{BASE}/rounds/9/judgments", "round 9"),
        (f"{BASE}/answers/999999", "answer 999999"),
    ]:
        response = client.get(path)
        assert response.status_code == 404 and named in response.json()["detail"], path
    assert client.get(f"{BASE}/rounds/-1").status_code == 422


def test_a_finished_campaign_streams_its_rounds_and_ends(client):
    events = []
    with client.stream("GET", f"{BASE}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[0] == "campaign" and events[-1] == "end"
    assert events.count("round") == 3


def test_judgments_and_answers_carry_the_spans_the_judge_located(client, db):
    """The rule judge's spans, stored by the judge stage, come back over the API as the
    judge computes them again from the instruction and the answer."""
    from judge.base import JudgeRequest
    from judge.rule_judge import RuleJudge

    everything = client.get(f"{BASE}/rounds/1/judgments", params={"limit": 100}).json()["data"]
    judge = RuleJudge()
    for j in everything:
        [again] = judge.judge([JudgeRequest(j["instruction"], j["answer"])])
        assert j["spans"] == [list(span) for span in again.spans]
        stored = db.get(Judgment, j["id"])
        assert stored.spans == j["spans"]
    assert any(j["spans"] for j in everything)  # random answers break located constraints
    negative = next(j for j in everything if j["polarity"] == "negative")
    answer = client.get(f"{BASE}/answers/{negative['generation_id']}").json()
    assert answer["judgments"][0]["spans"] == negative["spans"]


def test_a_done_rounds_page_is_kept_and_read_afresh_when_the_round_is_done_again(client, db):
    """A done round's rows no longer change, so its pages are sent as first built; a
    round whose finish time moved (resumed, then done again) is queried afresh."""
    url = f"{BASE}/rounds/1/judgments"
    first = client.get(url, params={"limit": 5}).json()
    judgment = db.get(Judgment, first["data"][0]["id"])
    round_ = db.get(Round, db.get(Generation, judgment.generation_id).round_id)
    text, finished_at = judgment.text, round_.finished_at
    judgment.text = "changed behind the API's back"
    db.commit()
    try:
        assert client.get(url, params={"limit": 5}).json() == first
        assert client.get(url, params={"limit": 6}).json()["data"][0]["text"] == judgment.text
        round_.finished_at = finished_at + timedelta(seconds=1)
        db.commit()
        assert client.get(url, params={"limit": 5}).json()["data"][0]["text"] == judgment.text
    finally:
        judgment.text, round_.finished_at = text, finished_at
        db.commit()
