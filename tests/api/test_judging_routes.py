"""The judging routes on both stores: annotators (their own tokens) claim, judge, skip
and reject, and do nothing else; errors are 401/403/404/409/422 naming what is wrong;
a judgment sent twice is stored once; what people wrote exports as judged data that
`cutloop train` reads."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from cut.datafile import load_judged_file
from cut.examples import Polarity
from orchestrator.exports import people_judgments
from store.annotators import add_annotator
from store.campaigns import create_campaign, ensure_round
from store.engine import make_engine, session_factory
from store.judging import publish_tasks
from store.models import Split, Stage
from store.results import add_generations, add_prompts
from store.schema import upgrade
from tests.store.factories import generation_rows

OPERATOR = "operator-token"
TASKS = "/api/v1/campaigns/people/rounds/1/tasks"


@pytest.fixture
def people(launch_settings, db_url):
    """A campaign judged by people whose round 1 waits on three answers, and the tokens
    of two annotators, alice and bob."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine).begin() as session:
        campaign = create_campaign(session, "people", {"rounds": 1, "judge": {"kind": "human"}})
        round_ = ensure_round(session, campaign, 1)
        round_.stage = Stage.JUDGE
        prompts = add_prompts(session, campaign.id, ["Say hi.", "Count.", "Name a color."],
                              "test", Split.TRAIN)  # fmt: skip
        generations = add_generations(session, generation_rows(round_.id, prompts))
        publish_tasks(session, round_.id, dict.fromkeys(generations))
        tokens = {name: add_annotator(session, name) for name in ("alice", "bob")}
    engine.dispose()
    return launch_settings.model_copy(update={"token": OPERATOR}), tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_annotators_judge_over_the_api_and_nothing_else(people, db_url, tmp_path):
    settings, tokens = people
    alice, bob = bearer(tokens["alice"]), bearer(tokens["bob"])
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/annotator", headers=alice).json()["name"] == "alice"
        assert client.get("/api/v1/annotator", headers=bearer(OPERATOR)).status_code == 401
        assert client.post(f"{TASKS}/claim").status_code == 401
        # an annotator's token is refused where the operator's is needed
        for path in ("/api/v1/campaigns/people/pause", "/api/v1/annotators"):
            refused = client.post(path, headers=alice, json={"name": "mallory"})
            assert refused.status_code == 403 and "annotator" in refused.json()["detail"]
        added = client.post("/api/v1/annotators", headers=bearer(OPERATOR), json={"name": "carol"})
        assert added.status_code == 201 and added.json()["token"].startswith("cla_")
        again = client.post("/api/v1/annotators", headers=bearer(OPERATOR), json={"name": "carol"})
        assert again.status_code == 409

        mine = client.post(f"{TASKS}/claim", headers=alice).json()
        theirs = client.post(f"{TASKS}/claim", headers=bob).json()
        assert mine["claimed_by"] == "alice" and theirs["id"] != mine["id"]
        assert client.post(f"{TASKS}/claim", headers=alice).json()["id"] == mine["id"]
        judgment = {"text": "It greets, but twice.", "polarity": "negative", "spans": [[0, 3]]}
        taken = client.post(f"{TASKS}/{mine['id']}/judgment", headers=bob, json=judgment)
        assert taken.status_code == 409 and "being judged by alice" in taken.json()["detail"]
        outside = {**judgment, "spans": [[0, 999]]}
        bad = client.post(f"{TASKS}/{mine['id']}/judgment", headers=alice, json=outside)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "spans"]
        blank = client.post(f"{TASKS}/{mine['id']}/judgment", headers=alice,
                            json={**judgment, "text": "  "})  # fmt: skip
        assert blank.status_code == 422
        stored = client.post(f"{TASKS}/{mine['id']}/judgment", headers=alice, json=judgment)
        assert stored.status_code == 201 and stored.json()["outcome"] == "judged"
        retried = client.post(f"{TASKS}/{mine['id']}/judgment", headers=alice, json=judgment)
        assert retried.status_code == 200
        assert retried.json()["judgment"]["id"] == stored.json()["judgment"]["id"]
        changed = client.post(f"{TASKS}/{mine['id']}/judgment", headers=alice,
                              json={**judgment, "text": "Fine."})  # fmt: skip
        assert changed.status_code == 409

        assert client.post(f"{TASKS}/{theirs['id']}/reject", headers=bob).status_code == 409
        skipped = client.post(f"{TASKS}/{theirs['id']}/skip", headers=bob).json()
        assert (skipped["claimed_by"], skipped["skips"]) == (None, 1)
        assert client.post(f"{TASKS}/99999/skip", headers=bob).status_code == 404
        assert client.post("/api/v1/campaigns/people/rounds/7/tasks/claim",
                           headers=bob).status_code == 404  # fmt: skip

        assert len(client.get(TASKS).json()["data"]) == 2
        assert len(client.get(f"{TASKS}?state=all").json()["data"]) == 3
        campaign = client.get("/api/v1/campaigns/people").json()
        assert campaign["waiting"] == "waiting for judgments: 1 of 3 done"
        (row,) = client.get("/api/v1/campaigns/people/rounds/1/judgments").json()["data"]
        assert (row["annotator"], row["judge_name"]) == ("alice", "human")
        assert row["text"] == judgment["text"]

    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        exported = people_judgments(session, "people", 1)
    engine.dispose()
    path = tmp_path / "judged.json"
    path.write_text(json.dumps(exported))
    (example,) = load_judged_file(path).examples
    assert (example.judgment, example.polarity, example.spans) == (
        judgment["text"], Polarity.NEGATIVE, ((0, 3),))  # fmt: skip
