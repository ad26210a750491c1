"""The campaign driver: runs a campaign's rounds from the store's state, in a Ray actor.

Each round is claimed (one runner at a time, cluster-wide) under a lease the driver
renews while it works. A claim left by a runner that died is taken over at once when
that runner was on this machine (its process is gone), else when its lease expires.
Between batches the driver reads the campaign's status: `paused` or `cancelled`, set by
another process, stops it cleanly where it is. A failing round is recorded as failed
with the reason; running the campaign again resumes that round at its stage.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psutil
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config import CampaignConfig
from orchestrator.failures import full_detail, one_line
from orchestrator.instructions import eval_items, eval_set_sha256, train_instructions
from orchestrator.judgeability import judging_problems
from orchestrator.lifecycle import store_campaign
from orchestrator.models import resolve_model
from orchestrator.round_context import RoundContext, Snapshot, StageTimes, Stopped
from orchestrator.rounds import run_round
from orchestrator.runtime import CampaignWorkers
from orchestrator.tracking import Reporter, missing_trackers
from store.campaigns import (
    campaign_by_name,
    campaign_status,
    claim_round,
    ensure_round,
    fail_campaign,
    fail_round,
    fix_eval_set,
    release_round,
    renew_claim,
    set_campaign_status,
)
from store.engine import make_engine, session_factory
from store.home import campaign_identity, claim_directory
from store.models import Campaign, CampaignStatus, Round, RoundStatus, Split, utcnow
from store.results import add_prompts
from store.schema import upgrade

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
RENEW_EVERY_S = 20.0


def runner_identity() -> str:
    """host:pid:process start time — a pid alone may be reused after a crash."""
    started = int(psutil.Process().create_time())
    return f"{socket.gethostname()}:{os.getpid()}:{started}"


def runner_is_gone(holder: str) -> bool:
    """True when `holder` ran on this machine and its process no longer exists."""
    host, pid, started = holder.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        return int(psutil.Process(int(pid)).create_time()) != int(started)
    except psutil.NoSuchProcess:
        return True


class Lease:
    """Renews the claim on a round every RENEW_EVERY_S seconds until stopped."""

    def __init__(self, sessions: sessionmaker[Session], round_id: int, runner: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, args=(sessions, round_id, runner), daemon=True
        )
        self._thread.start()

    def _renew(self, sessions: sessionmaker[Session], round_id: int, runner: str) -> None:
        while not self._stop.wait(RENEW_EVERY_S):
            with sessions.begin() as session:
                renew_claim(session, round_id, runner)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class RoundHeld(RuntimeError):
    """Another live runner holds the round: the campaign is its to run and to report."""


class CannotStart(ValueError):
    """The campaign's judge or annotator cannot judge its instructions (judgeability.py),
    or a tracker it reports to is not installed (tracking.py)."""


@dataclass
class CampaignOutcome:
    status: CampaignStatus
    error: str | None = None
    times: dict[int, StageTimes] = field(default_factory=dict)


class CampaignDriver:
    def __init__(self, config: CampaignConfig, database_url: str, home: str) -> None:
        self.config = config
        self.database_url = database_url
        self.campaign_dir = Path(home) / "campaigns" / config.name
        self.snapshot = Snapshot(rounds=config.rounds)
        self.runner = runner_identity()
        self._opened = False  # this driver set the campaign running

    def progress(self) -> Snapshot:
        return self.snapshot

    def start(self) -> None:
        """Run the campaign in a thread and return at once (a launch over the API). The
        actor ends itself when the campaign stops, so nothing lingers on the cluster."""
        import ray

        myself = ray.get_runtime_context().current_actor

        def run_then_exit() -> None:
            try:
                self.run()
            finally:
                ray.kill(myself, no_restart=True)

        threading.Thread(target=run_then_exit, name="campaign", daemon=True).start()

    def _open_campaign(self, sessions: sessionmaker[Session], eval_set: str) -> Campaign:
        with sessions.begin() as session:
            campaign, _ = store_campaign(session, self.config)
            campaign.config = self.config.model_dump(mode="json", by_alias=True)  # its rounds
            fix_eval_set(session, campaign, eval_set)
            if campaign.status != CampaignStatus.CANCELLED:  # done rounds are skipped
                set_campaign_status(session, campaign.id, CampaignStatus.RUNNING)
                self._opened = True
            instructions = train_instructions(self.config.instructions)
            source = self.config.instructions.kind
            add_prompts(session, campaign.id, instructions, source, Split.TRAIN)
            session.refresh(campaign)
            return campaign

    def _check_stop(self, sessions: sessionmaker[Session], campaign_id: int):
        def check() -> None:
            with sessions() as session:
                status = campaign_status(session, campaign_id)
            if status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
                raise Stopped(status)

        return check

    def _claim(self, sessions: sessionmaker[Session], round_: Round) -> None:
        holder = round_.claimed_by
        with sessions.begin() as session:
            claimed = claim_round(
                session,
                round_.id,
                self.runner,
                dead_holder=holder if holder and runner_is_gone(holder) else None,
                expired_before=utcnow() - LEASE,
            )
        if not claimed:
            raise RoundHeld(f"round {round_.index} is being run by {holder}")

    def run(self) -> CampaignOutcome:
        """Run the campaign. A refusal (another config under the same name, a round held
        by a live driver, an unreadable instruction source, instructions its judge cannot
        judge) is the outcome's error and leaves the stored rounds as they are."""
        try:
            return self._run()
        except RoundHeld as error:
            return CampaignOutcome(CampaignStatus.FAILED, str(error))
        except CannotStart as error:  # e.g. a launched campaign's file changed since
            self._record_refusal(str(error))
            return CampaignOutcome(CampaignStatus.FAILED, str(error))
        except Exception as error:
            logger.exception("campaign %s did not start", self.config.name)
            message = f"{type(error).__name__}: {error}"
            self._record_refusal(message)
            return CampaignOutcome(CampaignStatus.FAILED, message)

    def _record_refusal(self, message: str) -> None:
        """A campaign this driver opened, or was launched to run (queued), and could not
        run is failed with the reason, not left looking queued or running."""
        engine = make_engine(self.database_url)
        try:
            with session_factory(engine).begin() as session:
                campaign = campaign_by_name(session, self.config.name)
                if campaign is not None and (
                    self._opened or campaign.status == CampaignStatus.QUEUED
                ):
                    fail_campaign(session, campaign, message)
        except Exception:  # the refusal itself is returned; this record is a courtesy
            logger.exception("could not record why campaign %s did not start", self.config.name)
        finally:
            engine.dispose()

    def _run(self) -> CampaignOutcome:
        problems = judging_problems(self.config) + missing_trackers(self.config.tracking)
        if problems:
            raise CannotStart("; ".join(problems))
        upgrade(self.database_url)
        engine = make_engine(self.database_url)
        sessions = session_factory(engine)
        evaluation_set = eval_items(self.config.evaluation)
        campaign = self._open_campaign(sessions, eval_set_sha256(evaluation_set))
        if campaign.status == CampaignStatus.CANCELLED:
            return CampaignOutcome(campaign.status, "the campaign was cancelled; use a new name")
        identity = campaign_identity(self.database_url, campaign.id)
        claim_directory(self.campaign_dir, identity)
        policy = resolve_model(self.config.policy)
        workers = CampaignWorkers(self.config, policy, self.campaign_dir, identity)
        logger.info("placement of %s: %s", self.config.name, " / ".join(workers.plan.describe()))
        outcome = CampaignOutcome(CampaignStatus.DONE)
        reporter = Reporter(self.config, self.campaign_dir)
        try:
            for index in range(self.config.rounds + 1):
                with sessions() as session:  # what a run before this one left unreported
                    reporter.report(session, campaign.id)
                with sessions.begin() as session:
                    round_ = ensure_round(session, campaign, index)
                if round_.status == RoundStatus.DONE:
                    continue
                self.snapshot.round = index
                outcome.times[index] = StageTimes()
                context = RoundContext(
                    self.config, sessions, campaign.id, self.campaign_dir, workers.policy,
                    workers, evaluation_set,
                    self._check_stop(sessions, campaign.id), self.snapshot, outcome.times[index],
                )  # fmt: skip
                self._claim(sessions, round_)
                lease = Lease(sessions, round_.id, self.runner)
                try:
                    run_round(context, round_.id, index)
                except Stopped as stop:
                    outcome.status = stop.args[0]
                    return outcome
                except Exception as error:
                    logger.exception("round %d failed", index)
                    outcome.status = CampaignStatus.FAILED
                    with sessions.begin() as session:
                        failed = session.get_one(Round, round_.id)
                        outcome.error = f"round {index}: {one_line(error, failed.stage.value)}"
                        fail_round(session, failed, outcome.error, full_detail(error))
                        set_campaign_status(session, campaign.id, CampaignStatus.FAILED)
                    return outcome
                finally:
                    lease.stop()
                    with sessions.begin() as session:
                        release_round(session, round_.id, self.runner)
            with sessions() as session:
                reporter.report(session, campaign.id)
            with sessions.begin() as session:
                set_campaign_status(session, campaign.id, CampaignStatus.DONE)
            return outcome
        finally:
            reporter.close()
            workers.shutdown()
            engine.dispose()
