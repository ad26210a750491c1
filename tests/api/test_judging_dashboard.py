"""People judge inside the loop: a campaign launched over the API with `judge: {kind:
human}` waits while two annotators, each in their own headless Chromium, write judgments
in the dashboard's judging view (typing, choosing polarity, marking the text at fault,
skipping, with the keyboard shortcuts); the round then trains on exactly what they
wrote. Nothing is fetched from outside the server and the page logs no error."""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import httpx
from playwright.sync_api import expect
from sqlalchemy import select

from api.app import create_app
from store.engine import make_engine, session_factory
from store.models import Round, TrainingRun
from tests.api.launched import DEADLINE_S, config_of, wait_until
from tests.api.served import served_on_a_port
from tests.db_fixtures import sqlite_only

TIMEOUT_MS = 30_000
OPERATOR = "operator-token"
SHOWN = """(before) => {
  const task = document.getElementById("task");
  const message = document.getElementById("judging-message");
  return (!task.hidden && task.dataset.shown !== before) || !message.hidden;
}"""
SELECT_FIRST_CHARACTERS = """(n) => {
  const answer = document.getElementById("task-answer"), range = document.createRange();
  range.setStart(answer.firstChild, 0);
  range.setEnd(answer.firstChild, n);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}"""


def open_judging_view(browser, url: str, token: str, problems: dict[str, list]):
    page = browser.new_context().new_page()  # a context each: their own session storage
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda error: problems["errors"].append(str(error)))
    page.on("console", lambda m: problems["errors"].append(m.text) if m.type == "error" else None)

    def only_this_server(route):
        if urlparse(route.request.url).netloc != urlparse(url).netloc:
            problems["outside"].append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", only_this_server)
    page.goto(f"{url}/dashboard/#/c/people")
    expect(page.locator("#campaign-waiting")).to_contain_text(
        re.compile(r"waiting for judgments: \d+ of 6 done")
    )
    page.locator("#judge-link").click()
    page.locator("#annotator-token").fill(token)
    page.locator("#annotator-token").dispatch_event("change")
    expect(page.locator("#judging-who")).to_have_text(re.compile("judging as"))
    return page


def first_progress(client: httpx.Client) -> dict:
    """The first `progress` event of the campaign's stream."""
    with client.stream("GET", "/api/v1/campaigns/people/events", timeout=60) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "progress":
                return json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended without a progress event")


def next_shown(page, before: str | None) -> bool:
    """Waits for a new task or the no-task message; True when a task is shown."""
    page.wait_for_function(SHOWN, arg=before or "", timeout=TIMEOUT_MS)
    return not page.locator("#task").is_hidden()


@sqlite_only
def test_two_annotators_judge_in_the_dashboard_and_the_round_trains_on_their_words(
    launch_settings, policy, db_url, browser
):
    settings = launch_settings.model_copy(update={"token": OPERATOR})
    problems: dict[str, list] = {"errors": [], "outside": []}
    written: dict[int, tuple] = {}  # task id: (annotator, text, polarity, spans)
    with served_on_a_port(create_app(settings)) as url:
        operator = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {OPERATOR}"})
        tokens = {name: operator.post("/api/v1/annotators", json={"name": name}).json()["token"]
                  for name in ("alice", "bob")}  # fmt: skip
        judge = {"kind": "human", "poll_s": 0.3}
        assert operator.post("/api/v1/campaigns", json=config_of("people", policy, rounds=1,
                             judge=judge)).status_code == 201  # fmt: skip
        assert operator.post("/api/v1/campaigns/people/launch").status_code == 202
        wait_until(lambda: operator.get("/api/v1/campaigns/people").json()["waiting"],
                   "the round waiting for judgments")  # fmt: skip
        assert first_progress(operator)["waiting"] == "waiting for judgments: 0 of 6 done"
        pages = {name: open_judging_view(browser, url, tokens[name], problems) for name in tokens}
        shown = {name: next_shown(pages[name], None) for name in pages}
        skipped = False
        while any(shown.values()):
            for name, page in pages.items():
                if not shown[name]:
                    continue
                before = page.locator("#task").get_attribute("data-shown")
                task = int(page.locator("#task").get_attribute("data-task"))
                if name == "alice" and not skipped:  # given back: someone judges it later
                    page.keyboard.press("Alt+KeyS")
                    skipped = True
                    shown[name] = next_shown(page, before)
                    continue
                answer = page.locator("#task-answer").text_content()
                spans = []
                if len(answer) >= 3 and len(written) % 2 == 0:
                    page.evaluate(SELECT_FIRST_CHARACTERS, 3)
                    page.locator("#task-mark").click()
                    expect(page.locator("#task-answer mark.judged")).to_have_text(answer[:3])
                    spans = [[0, 3]]
                text = f"{name}, answer {len(written) + 1}: it does not say what was asked."
                page.locator("#task-text").fill(text)
                polarity = "positive" if len(written) % 3 == 2 else "negative"
                if polarity == "positive":
                    page.keyboard.press("Alt+KeyP")
                page.locator("#task-text").press("Control+Enter")
                written[task] = (name, text, polarity, spans)
                shown[name] = next_shown(page, before)
        assert skipped and len(written) == 6
        for page in pages.values():
            expect(page.locator("#judging-progress")).to_have_text("6 of 6 done")
        wait_until(lambda: operator.get("/api/v1/campaigns/people").json()["status"] == "done",
                   "the campaign done after the people judged", DEADLINE_S)  # fmt: skip
        tasks = operator.get("/api/v1/campaigns/people/rounds/1/tasks?state=all").json()["data"]
        stored = {t["id"]: (t["judgment"]["annotator"], t["judgment"]["text"],
                            t["judgment"]["polarity"], [list(s) for s in t["judgment"]["spans"]])
                  for t in tasks}  # fmt: skip
        assert stored == written  # word for word, by whom they were written
        judged_generations = {t["generation_id"] for t in tasks}
        for page in pages.values():
            page.close()
    assert problems == {"errors": [], "outside": []}
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        run = session.scalars(
            select(TrainingRun)
            .join(Round, Round.id == TrainingRun.round_id)
            .where(Round.index == 1)
        ).one()
        trained = run.hyperparameters
        assert trained["judge"] == "people" and run.steps
        assert set(trained["generation_ids"]) <= judged_generations
        assert len(trained["generation_ids"]) + trained["left_out"] == 6
        negatives = sum(w[2] == "negative" for w in written.values())
        assert trained["negative"] == negatives
    engine.dispose()
