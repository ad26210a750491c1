import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path
from select import select as wait_readable

import pytest
from sqlalchemy import func, select

from store.campaigns import complete_stage, start_stage
from store.errors import StoreError
from store.models import Generation, Round, RoundStage, RoundStatus, Stage
from tests.store.claim_process import contend
from tests.store.factories import campaign_with_round

ROOT = Path(__file__).parents[2]


def test_a_writer_killed_mid_transaction_leaves_no_stage_complete(sessions, db_url):
    with sessions.begin() as s:
        _, round_, _ = campaign_with_round(s, n_prompts=50)
        s.execute(Round.__table__.update().values(stage=Stage.GENERATE))
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.store.writer_process", db_url, str(round_.id)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    ready, _, _ = wait_readable([writer.stdout], [], [], 60)  # a deadline on the writer
    assert ready, "the writer did not report its flush within 60 s"
    assert writer.stdout.readline().strip() == "flushed"  # rows are in the database, uncommitted
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=60) == -signal.SIGKILL

    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Generation)) == 0
        assert s.get(Round, round_.id).stage == Stage.GENERATE
        finished = s.scalars(select(RoundStage.finished_at)).all()
        assert all(f is None for f in finished)


def test_exactly_one_of_racing_orchestrators_claims_a_round(sessions, db_url):
    with sessions.begin() as s:
        _, round_, _ = campaign_with_round(s)
    context = multiprocessing.get_context("spawn")
    n = 6
    barrier, results = context.Barrier(n), context.Queue()
    contenders = [
        context.Process(target=contend, args=(db_url, round_.id, f"w{i}", barrier, results))
        for i in range(n)
    ]
    for process in contenders:
        process.start()
    outcomes = dict(results.get(timeout=60) for _ in contenders)
    for process in contenders:
        process.join(timeout=60)
    winners = [worker for worker, won in outcomes.items() if won]
    assert len(winners) == 1
    with sessions() as s:
        stored = s.get(Round, round_.id)
        assert stored.claimed_by == winners[0] and stored.status == RoundStatus.RUNNING


def test_stages_advance_in_order_and_refuse_the_wrong_one(sessions):
    with sessions.begin() as s:
        _, round_, _ = campaign_with_round(s)
        assert complete_stage(s, round_, Stage.SAMPLE) == Stage.GENERATE
        with pytest.raises(StoreError, match=r"round\.stage"):
            start_stage(s, round_, Stage.TRAIN)
        for stage in list(Stage)[1:-1]:
            complete_stage(s, round_, stage)
        assert round_.stage == Stage.DONE and round_.status == RoundStatus.DONE
