"""The API keeps done rounds' summaries: the same as summarising them afresh, never
queried again while done, and summarised afresh when a round is no longer done."""

from store.models import RoundStatus, utcnow
from store.results import add_judgments
from store.summaries import FinishedRounds, round_summaries
from tests.store.factories import judgment_row, seeded_generations


def test_done_rounds_are_summarised_once_and_as_afresh(sessions):
    finished = FinishedRounds()
    with sessions.begin() as s:
        campaign, round_, generations = seeded_generations(s)
        add_judgments(s, [judgment_row(generations[0])])
        round_.status, round_.finished_at = RoundStatus.DONE, utcnow()
    with sessions() as s:
        assert finished.round_summaries(s, campaign.id) == round_summaries(s, campaign.id)
        (kept,) = finished.round_summaries(s, campaign.id)
        assert (kept.generations, kept.positive) == (3, 1)
    with sessions.begin() as s:  # rows a done round never gets: the summary kept shows none
        add_judgments(s, [judgment_row(generations[1])])
    with sessions() as s:
        assert finished.round_summaries(s, campaign.id) == [kept]
        assert round_summaries(s, campaign.id)[0].positive == 2
    with sessions.begin() as s:  # resumed: no longer done, summarised afresh
        s.get(type(round_), round_.id).status = RoundStatus.RUNNING
    with sessions() as s:
        (fresh,) = finished.round_summaries(s, campaign.id)
        assert (fresh.status, fresh.positive) == (RoundStatus.RUNNING, 2)
