import pytest
from sqlalchemy import func, select

from store.campaigns import campaign_by_name, create_campaign, ensure_round
from store.errors import ConflictError, StoreError
from store.models import Generation, Judgment, JudgmentStatus, Prompt
from store.results import (
    add_generations,
    add_judgments,
    add_prompts,
    count_generations,
    ok_judgments,
    take_unused_prompts,
    unjudged_generations,
)
from tests.store.factories import (
    campaign_with_round,
    generation_rows,
    judgment_row,
    seeded_generations,
)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_generations_are_idempotent_per_round_prompt_sample(sessions):
    with sessions.begin() as s:
        _, round_, prompt_ids = campaign_with_round(s)
        first = add_generations(s, generation_rows(round_.id, prompt_ids))
    with sessions.begin() as s:  # a resumed stage writes the same rows again
        again = add_generations(s, generation_rows(round_.id, prompt_ids))
        assert again == first
        assert count(s, Generation) == 3


def test_a_different_value_for_a_stored_key_is_a_conflict_and_nothing_commits(sessions):
    with sessions.begin() as s:
        _, round_, prompt_ids = campaign_with_round(s)
        add_generations(s, generation_rows(round_.id, prompt_ids))
    conflict = pytest.raises(ConflictError, match=r"generation\.text: .* refusing to overwrite")
    with conflict, sessions.begin() as s:
        create_campaign(s, "other", {})
        add_generations(s, generation_rows(round_.id, prompt_ids, text="changed"))
    with sessions() as s:
        assert campaign_by_name(s, "other") is None  # the whole transaction rolled back
        assert {g.text for g in s.scalars(select(Generation))} == {
            f"answer {i}" for i in prompt_ids
        }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sample_index": -1}, "sample_index"),
        ({"text": None}, "text"),
        ({"prompt_id": 10_000}, "generation"),  # foreign key: no such prompt
    ],
)
def test_constraint_violations_name_entity_and_field(sessions, change, field):
    with sessions.begin() as s:
        _, round_, prompt_ids = campaign_with_round(s)
    with pytest.raises(StoreError, match=field) as raised, sessions.begin() as s:
        create_campaign(s, "other", {})
        add_generations(s, [generation_rows(round_.id, prompt_ids)[0] | change])
    assert "generation" in str(raised.value)
    with sessions() as s:
        assert campaign_by_name(s, "other") is None and count(s, Generation) == 0


def test_one_ok_judgment_per_generation_and_judge_failures_kept_apart(sessions):
    with sessions.begin() as s:
        _, round_, gen_ids = seeded_generations(s)
        failed = judgment_row(gen_ids[0], status=JudgmentStatus.FAILED)
        ids = add_judgments(s, [failed, failed])
        unjudged = unjudged_generations(s, round_.id, "rules")
        assert [g.id for g, _ in unjudged] == gen_ids  # a failed call leaves it unjudged
        ids += add_judgments(s, [judgment_row(g) for g in gen_ids])
        assert len(set(ids)) == 5  # two failed attempts are two records
    with sessions.begin() as s:
        again = add_judgments(s, [judgment_row(g) for g in gen_ids])
        assert again == ids[2:]
        assert count(s, Judgment) == 5
        usable = ok_judgments(s, [round_.id], "rules")
        assert unjudged_generations(s, round_.id, "rules") == []
        chosen = ok_judgments(s, [round_.id], "rules", [gen_ids[2], gen_ids[0]])
        assert [g.id for g, _, _ in chosen] == [gen_ids[2], gen_ids[0]]  # in the order asked
        assert count_generations(s, round_.id) == 3
        assert [j.status for _, j, _ in usable] == [JudgmentStatus.OK] * 3
    with pytest.raises(ConflictError, match=r"judgment\.text"), sessions.begin() as s:
        add_judgments(s, [judgment_row(gen_ids[0], text="Wrong: it is 56.")])


def test_an_ok_judgment_needs_text_and_a_failed_one_an_error(sessions):
    with sessions.begin() as s:
        _, _, gen_ids = seeded_generations(s)
    for bad in (
        judgment_row(gen_ids[0], text=None),
        judgment_row(gen_ids[0], status=JudgmentStatus.FAILED, error=None),
    ):
        with pytest.raises(StoreError, match="judgment"), sessions.begin() as s:
            add_judgments(s, [bad])


def test_prompts_are_not_reused_across_rounds_and_resume_gets_the_same(sessions):
    with sessions.begin() as s:
        campaign, round0, _ = campaign_with_round(s, n_prompts=5)
        first = [p.id for p in take_unused_prompts(s, round0, 3)]
    with sessions.begin() as s:
        round0 = s.merge(round0)
        assert [p.id for p in take_unused_prompts(s, round0, 3)] == first  # resume
        round1 = ensure_round(s, campaign, 1)
        second = [p.id for p in take_unused_prompts(s, round1, 3)]
        assert len(second) == 2 and not set(second) & set(first)
        assert add_prompts(s, campaign.id, ["instruction 0"], "test", "train") == [first[0]]
        assert count(s, Prompt) == 5


def test_a_batch_mixing_new_and_stored_keys_inserts_the_new_and_keeps_input_order(sessions):
    with sessions.begin() as s:
        _, round_, prompt_ids = campaign_with_round(s)
        rows = generation_rows(round_.id, prompt_ids)
        stored = add_generations(s, rows[:2])
    with sessions.begin() as s:  # a resumed stage: one new row between two stored ones
        ids = add_generations(s, [rows[1], rows[2], rows[0]])
        assert (ids[0], ids[2]) == (stored[1], stored[0]) and ids[1] not in stored
        texts = {g.id: g.text for g in s.scalars(select(Generation))}
        assert [texts[i] for i in ids] == [rows[1]["text"], rows[2]["text"], rows[0]["text"]]


def test_a_key_given_twice_in_one_batch_is_one_row_or_a_conflict(sessions):
    with sessions.begin() as s:
        _, round_, prompt_ids = campaign_with_round(s)
        row = generation_rows(round_.id, prompt_ids)[0]
        first, again = add_generations(s, [row, dict(row)])
        assert first == again and count(s, Generation) == 1
    changed = {**row, "sample_index": 1}, {**row, "sample_index": 1, "text": "changed"}
    conflict = pytest.raises(ConflictError, match=r"generation\.text: .* twice in one batch")
    with conflict, sessions.begin() as s:
        add_generations(s, list(changed))
    with sessions() as s:
        assert count(s, Generation) == 1  # nothing of the refused batch was written


def test_a_judgments_spans_are_stored_and_read_back_for_training(sessions):
    """Build reads the spans back (a resumed round trains on what was stored), on both
    stores; a repeat with other spans is a conflict, never an overwrite."""
    from orchestrator.learn import as_examples

    with sessions.begin() as s:
        _, round_, gen_ids = seeded_generations(s)
        add_judgments(s, [
            judgment_row(gen_ids[0], text="Commas.", polarity="negative", spans=[[1, 2], [4, 6]]),
            judgment_row(gen_ids[1], text="No title.", polarity="negative", spans=[]),
            judgment_row(gen_ids[2]),  # stored without spans, as before they existed
        ])  # fmt: skip
    with sessions() as s:
        judged = ok_judgments(s, [round_.id], "rules")
        assert [j.spans for _, j, _ in judged] == [[[1, 2], [4, 6]], [], None]
        assert [e.spans for e in as_examples(judged)] == [((1, 2), (4, 6)), (), ()]
    with pytest.raises(ConflictError, match=r"judgment\.spans"), sessions.begin() as s:
        add_judgments(s, [judgment_row(gen_ids[0], text="Commas.", polarity="negative",
                                       spans=[[1, 2]])])  # fmt: skip
