"""`cutloop run`, `status`, `pause` and `cancel`: start the driver actor, show its
progress live, and read campaigns from the store."""

from __future__ import annotations

import contextlib

from rich.console import Console

from orchestrator.campaign_table import rounds_table
from orchestrator.config import CampaignConfig
from orchestrator.driver import CampaignOutcome
from orchestrator.judgeability import judging_problems
from orchestrator.launcher import check_fits_cluster, start_driver
from orchestrator.lifecycle import LifecycleError, named, request_stop
from orchestrator.placement import PlacementError
from orchestrator.progress import campaign_progress, stderr_console, stdout_console
from orchestrator.round_context import Snapshot
from orchestrator.runtime import connect
from store.campaigns import list_campaigns
from store.engine import database_url, make_engine, session_factory
from store.home import cutloop_home
from store.judging import waiting_line
from store.models import CampaignStatus, Stage
from store.schema import upgrade
from store.summaries import round_summaries


def _metrics(snapshot: Snapshot) -> str:
    parts = []
    if snapshot.loss is not None:
        parts.append(f"loss {snapshot.loss:.4f} flagged {snapshot.flagged or 0:.1%}")
    if snapshot.win_rate is not None:
        parts.append(f"win rate {snapshot.win_rate:.1f}")
    return "  ".join(parts)


def request_status(name: str, wanted: str) -> None:
    """Pause or cancel the campaign by the lifecycle's rules (a LifecycleError says why
    not)."""
    engine = make_engine()
    try:
        with session_factory(engine).begin() as session:
            request_stop(session, named(session, name), CampaignStatus(wanted))
    finally:
        engine.dispose()


def run_campaign(config: CampaignConfig, verbose: bool = False) -> CampaignOutcome:
    """Run the campaign in a driver actor; a campaign that cannot be judged is refused
    before Ray starts, with nothing stored."""
    import ray

    problems = judging_problems(config)
    if problems:
        return CampaignOutcome(CampaignStatus.FAILED, "; ".join(problems))
    connect(config.ray_address, verbose)
    with contextlib.suppress(PlacementError):  # the driver refuses it and records why
        for line in check_fits_cluster(config):
            stderr_console.print(line, markup=False, highlight=False)
    try:
        driver = start_driver(config, database_url(), str(cutloop_home()), detached=False)
    except ValueError:  # the actor's name is taken
        message = f"campaign {config.name} is already running on this Ray cluster"
        return CampaignOutcome(CampaignStatus.FAILED, message)
    finished = driver.run.remote()
    with campaign_progress() as progress:
        shown, pausing = (0, ""), False
        task = progress.add_task("starting", total=None, round=0, rounds=config.rounds, metrics="")
        while True:
            try:
                if ray.wait([finished], timeout=0.5)[0]:
                    break
                snapshot: Snapshot = ray.get(driver.progress.remote())
                stage = snapshot.waiting or snapshot.stage  # people judge: how many are done
                if not stderr_console.is_terminal and (snapshot.round, stage) != shown:
                    shown = (snapshot.round, stage)  # a log line per stage when piped
                    stderr_console.print(f"round {shown[0]}/{config.rounds}: {shown[1]}")
                progress.update(
                    task, description=stage, completed=snapshot.done,
                    total=snapshot.total or None, round=snapshot.round, metrics=_metrics(snapshot),
                )  # fmt: skip
            except KeyboardInterrupt:
                if pausing:
                    raise  # the second Ctrl-C: leave now; the store keeps what is done
                pausing = True
                try:
                    request_status(config.name, CampaignStatus.PAUSED)
                    stderr_console.print("pausing after the current batch (Ctrl-C again to abort)")
                except LifecycleError as error:
                    stderr_console.print(f"{error} (Ctrl-C again to abort)", markup=False)
    outcome: CampaignOutcome = ray.get(finished)
    show_status(config.name, stdout_console())
    return outcome


def show_status(name: str | None, console: Console, details: bool = False) -> bool:
    """Print campaigns and their rounds, with `details` the full error of each failed
    round; False when there is nothing to show."""
    url = database_url()
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            campaigns = list_campaigns(session)
            if name is not None:
                campaigns = [c for c in campaigns if c.name == name]
            for campaign in campaigns:
                title = f"{campaign.name} — {campaign.status.value}"
                rounds = round_summaries(session, campaign.id)
                console.print(rounds_table(title, rounds))
                if campaign.error:
                    console.print(f"{campaign.name} failed: {campaign.error}", markup=False)
                for r in rounds:
                    if r.stage == Stage.JUDGE and r.tasks > r.tasks_done + r.tasks_expired:
                        console.print(f"round {r.index}: {waiting_line(r.tasks_done, r.tasks)}")
                if details:
                    for r in rounds:
                        if r.lc_missing:
                            console.print(f"round {r.index}: no LC win rate: {r.lc_missing}")
                        if r.error_detail:
                            console.print(f"round {r.index} failed at {r.stage.value}:")
                            console.print(r.error_detail, highlight=False, markup=False)
            return bool(campaigns)
    finally:
        engine.dispose()
