"""AlpacaEval's length-controlled win rate (Dubois et al. 2024): a logistic GLM predicts
each preference from the length difference between the two outputs (and, in
`length_controlled_v1`, each AlpacaEval instruction's difficulty), and the LC win rate
is the mean prediction with the length difference set to zero.

`length_controlled_v1` is the leaderboard's: alpaca_eval knows the difficulty of each of
its 805 instructions by position and regularises the fit towards its gamed baselines,
both read from the hub (tatsu-lab/alpaca_eval's df_gamed.csv). Any other eval set gets
`length_controlled_minimal`, length alone, which needs nothing from the hub."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from judge.alpaca_eval_annotator import alpaca_eval

ALPACA_EVAL_SIZE = 805
MAX_REASON = 300
FOLDS = 5  # alpaca_eval fits its GLMs with 5-fold cross-validation over items


@dataclass(frozen=True)
class Annotation:
    position: int  # in the eval set
    preference: float | None
    output: str
    reference: str


@dataclass(frozen=True)
class LengthControlled:
    win_rate: float | None
    standard_error: float | None
    glm: str
    missing: str | None = None  # why there is no win rate


def choose_glm(setting: str, eval_set_size: int) -> str:
    """`auto`: the leaderboard's GLM on AlpacaEval's own 805 instructions, else length only."""
    if setting != "auto":
        return setting
    if eval_set_size == ALPACA_EVAL_SIZE:
        return "length_controlled_v1"
    return "length_controlled_minimal"


def length_controlled(
    annotations: Sequence[Annotation], glm: str, *, self_reference: bool = False
) -> LengthControlled:
    """`self_reference`: the reference outputs are the policy's own (round 0 on an eval set
    without references), which alpaca_eval scores 50 by construction."""
    import pandas as pd

    decided = sum(a.preference is not None for a in annotations)
    if not self_reference and decided < FOLDS:
        missing = f"too few items: {decided} with a preference, the GLM's fit needs {FOLDS}"
        return LengthControlled(None, None, glm, missing)
    frame = pd.DataFrame(
        {
            "index": [a.position for a in annotations],
            "preference": [a.preference for a in annotations],
            "output_1": [a.reference for a in annotations],
            "output_2": [a.output for a in annotations],
            "generator_1": "reference",
            "generator_2": "reference" if self_reference else "policy",
            "annotator": "cutloop",
        }
    )
    try:
        value, error = _fit(frame, glm, self_reference)
    except Exception as failure:  # the GLM's own reason, e.g. the hub is out of reach
        first = next((line for line in str(failure).splitlines() if line.strip()), "")
        reason = f"{glm}: {type(failure).__name__}: {first.strip()}"
        return LengthControlled(None, None, glm, reason[:MAX_REASON])
    return LengthControlled(float(value), float(error), glm)


def _fit(frame, glm: str, self_reference: bool) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's, on alpaca_eval's calls
        if self_reference or glm == "length_controlled_v1":
            metrics = alpaca_eval().metrics.get_length_controlled_winrate(
                frame, glm_name=glm, save_weights_dir=None, is_warn_extreme_changes=False
            )
            return metrics["length_controlled_winrate"], metrics["lc_standard_error"]
        return _length_only(frame)


def _length_only(frame) -> tuple[float, float]:
    """alpaca_eval's `length_controlled_minimal` GLM, fitted by its own functions. Its
    featurizer (`_get_featurized_data`) is bypassed because it downloads the 805
    instructions' difficulty table even for this formula, which does not use it; the
    features are built as it builds them."""
    import pandas as pd

    glm = alpaca_eval().metrics.glm_winrate
    info = glm.GLM_INFO["length_controlled_minimal"]
    delta = frame["output_1"].str.len() - frame["output_2"].str.len()
    features = pd.DataFrame(
        {
            "preference": frame["preference"].astype(float).replace({0.0: 1.5}) - 1,
            "std_delta_len": delta / delta.std(),
            "not_gamed_baseline": True,
        }
    )
    test = features[["not_gamed_baseline"]].assign(std_delta_len=0)
    train, x_test = glm.make_dmatrix_for_model(features, test, formula=info["formula"])
    train = train[train["preference"].notna()]
    model = glm.fit_LogisticRegressionCV(train, "preference", is_ytrue_proba=True, **info["kwargs"])
    predicted = pd.Series(model.predict_proba(x_test)[:, 1])
    return predicted.mean() * 100, predicted.sem() * 100
