"""Health and Prometheus metrics (read from the store at scrape time)."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from api.deps import State
from api.schemas import Health
from store import metrics

router = APIRouter(tags=["operations"])


class StoreCollector:
    """Campaigns, rounds, stage durations, judge calls and generated tokens."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self):
        campaigns = GaugeMetricFamily("cutloop_campaigns", "Campaigns by status", labels=["status"])
        rounds = GaugeMetricFamily(
            "cutloop_rounds", "Rounds by status", labels=["campaign", "status"]
        )
        stages = SummaryMetricFamily("cutloop_stage_duration_seconds", "Finished stages' wall time",
                                     labels=["campaign", "stage"])  # fmt: skip
        calls = CounterMetricFamily("cutloop_judge_calls", "Judge calls recorded, by outcome",
                                    labels=["campaign", "status"])  # fmt: skip
        failures = CounterMetricFamily("cutloop_judge_failures", "Failed judge calls",
                                       labels=["campaign"])  # fmt: skip
        answers = CounterMetricFamily("cutloop_generations", "Answers generated for training",
                                      labels=["campaign"])  # fmt: skip
        tokens = CounterMetricFamily("cutloop_generated_tokens", "Completion tokens generated",
                                     labels=["campaign"])  # fmt: skip
        with self.state.sessions() as session:
            for status, count in metrics.campaigns_by_status(session):
                campaigns.add_metric([str(status)], count)
            for name, status, count in metrics.rounds_by_status(session):
                rounds.add_metric([name, str(status)], count)
            for total in metrics.stage_totals(session):
                stages.add_metric([total.campaign, total.stage], total.count, total.seconds)
            for name, status, count in metrics.judge_calls(session):
                calls.add_metric([name, str(status)], count)
                if status == "failed":
                    failures.add_metric([name], count)
            for name, count, completion in metrics.generated_tokens(session):
                answers.add_metric([name], count)
                tokens.add_metric([name], completion)
        yield from (campaigns, rounds, stages, calls, failures, answers, tokens)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})  # fmt: skip
def prometheus(state: State) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(state))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", response_model=Health)
def health(state: State) -> Health:
    """The database answers and the Ray cluster is joined (the API reads without Ray; it
    needs it to launch)."""
    import ray

    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception as error:  # reported, not raised: health must answer
        database = f"unreachable: {type(error).__name__}"
    cluster = "connected" if ray.is_initialized() else "not connected"
    healthy = database == "ok" and cluster == "connected"
    return Health(status="ok" if healthy else "degraded", database=database, ray=cluster,
                  version=version("cutloop"))  # fmt: skip
