"""Judge inputs whose answers carry the markers that steer FakeOpenAI's replies."""

from judge.base import JudgeRequest
from judge.pairwise import PairwiseItem

ITEMS = [
    PairwiseItem("Write a haiku.", "a reference answer", "a policy answer [[best]]"),
    PairwiseItem("Name a colour.", "a reference answer [[best]]", "a policy answer"),
    PairwiseItem("Count to three.", "a much longer reference answer", "short"),
    PairwiseItem("Say hi.", "a reference answer", "a policy answer [[garbage]]"),
    PairwiseItem("Say bye.", "a reference answer", "a policy answer [[fault:500:always]]"),
]


def ask(*responses: str) -> list[JudgeRequest]:
    return [JudgeRequest("What is 7 x 8?", r) for r in responses]
