"""A stage writer run as a separate process by the fault tests.

    python -m tests.store.writer_process URL ROUND_ID

Writes the round's generations and marks the generate stage complete in one
transaction, flushes it to the database, announces 'flushed' on stdout, then waits on
stdin before committing: the test kills it there with SIGKILL.
"""

import sys

from sqlalchemy import select

from store.campaigns import complete_stage, start_stage
from store.engine import make_engine, session_factory
from store.models import Prompt, Round, Stage
from store.results import add_generations
from tests.store.factories import generation_rows


def main(url: str, round_id: int) -> None:
    sessions = session_factory(make_engine(url))
    with sessions.begin() as session:
        round_ = session.get(Round, round_id)
        start_stage(session, round_, Stage.GENERATE)
        prompt_ids = list(session.scalars(select(Prompt.id).order_by(Prompt.id)))
        add_generations(session, generation_rows(round_id, prompt_ids))
        complete_stage(session, round_, Stage.GENERATE)
        session.flush()
        print("flushed", flush=True)
        sys.stdin.readline()  # killed here, before the commit


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
