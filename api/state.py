"""What the app's routes share: settings, the store's sessions and the launch queue's
wake-up; one instance per app, on `app.state.api`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.done_pages import DonePages
from orchestrator.config import CampaignConfig
from orchestrator.launcher import start_queued
from store.summaries import FinishedRounds

logger = logging.getLogger(__name__)


class ApiSettings(BaseModel):
    database_url: str
    home: str = Field(description="CUTLOOP_HOME: campaign directories, models, caches")
    token: str | None = Field(None, description="bearer token of mutating routes")
    poll_s: float = Field(1.0, gt=0, description="how often streams and the queue look")
    launch: CampaignConfig | None = Field(None, description="launched when the server starts")


@dataclass
class ApiState:
    settings: ApiSettings
    engine: Engine
    sessions: sessionmaker[Session]
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    finished: FinishedRounds = field(default_factory=FinishedRounds)  # done rounds' summaries
    done_pages: DonePages = field(default_factory=DonePages)  # done rounds' judgments pages

    def run_queue(self) -> None:
        """Start queued campaigns as room appears, until the app stops: a launch returns
        at once and the queue is the store's, so a restarted server picks it up."""
        while not self.stop.is_set():
            try:
                start_queued(self.sessions, self.settings.database_url, self.settings.home)
            except Exception:
                logger.exception("the launch queue could not start campaigns")
            self.wake.wait(self.settings.poll_s)
            self.wake.clear()
