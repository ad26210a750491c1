"""One contender in the round-claiming race: waits at the barrier, then claims."""

from store.campaigns import claim_round
from store.engine import make_engine, session_factory


def contend(url: str, round_id: int, worker: str, barrier, results) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        session.connection()  # connect before the start line
        barrier.wait(timeout=60)
        won = claim_round(session, round_id, worker)
    results.put((worker, won))
    engine.dispose()
