"""CRDS's answers for a whole pipeline, asked up front (framework.md §6.1 step 7).

A pipeline asks CRDS once, before it runs, for every reference type its steps may use; the
steps' own questions are then answered from here (``answered``) as long as the parameters
CRDS matches on for the instrument, and the CRDS configuration, are those it was asked
with.
"""

from __future__ import annotations

from dataclasses import dataclass

#: answers kept (most recent last): a process may run several pipelines on several datasets
KEPT = 8


@dataclass(frozen=True)
class Answers:
    """CRDS's answers for one dataset under one CRDS configuration."""

    configuration: tuple  # ``references.configure``'s state when asked
    matched: dict  # {parameter CRDS matches on for the instrument: the dataset's value}
    paths: dict  # {reftype: absolute path or "N/A"}
    context: str | None


_kept: list[Answers] = []


def keep(answers: Answers) -> None:
    _kept.append(answers)
    del _kept[:-KEPT]


def forget() -> None:
    _kept.clear()


def answered(parameters: dict, configuration: tuple, reftypes: list[str]) -> Answers | None:
    """Kept answers that hold for a dataset of these ``parameters`` (``dataset_parameters``)
    and cover ``reftypes`` (None when there are none)."""
    for answers in reversed(_kept):
        if answers.configuration == configuration and all(
                reftype in answers.paths for reftype in reftypes) and all(
                parameters.get(key) == value for key, value in answers.matched.items()):
            return answers
    return None
