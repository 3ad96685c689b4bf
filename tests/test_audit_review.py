"""`pipeline audit review`: the suspects walked through, the reviewed files written for split to read."""

import io

import pandas as pd
import pytest

from pipeline.config.datasets import SplitParams
from pipeline.core.errors import PipelineError
from pipeline.analysis.audit_review import review


@pytest.fixture
def findings(paths):
    folder = paths.audit_dir("pets")
    folder.mkdir(parents=True)
    pd.DataFrame({"path": ["cat/1.jpg", "dog/2.jpg"], "given": ["cat", "dog"], "suggested": ["dog", "cat"],
                  "score": [0.9, 0.8]}).to_csv(folder / "label_issues.csv", index=False)
    pd.DataFrame({"path": ["cat/blank.jpg"], "score": [0.99]}).to_csv(folder / "outliers.csv", index=False)
    return paths


def test_accept_relabels_the_suspects_and_excludes_the_outliers(findings, monkeypatch):
    monkeypatch.chdir(findings.root)
    assert review("pets", SplitParams(), findings, accept=True) == {"excluded": 1, "relabelled": 2, "kept": 0}
    assert pd.read_csv("reviews/pets/relabel.csv").to_dict("list") == {"path": ["cat/1.jpg", "dog/2.jpg"],
                                                                       "label": ["dog", "cat"]}
    assert list(pd.read_csv("reviews/pets/exclude.csv")["path"]) == ["cat/blank.jpg"]


def test_answers_are_kept_and_not_asked_again(findings, monkeypatch):
    monkeypatch.chdir(findings.root)
    answers = iter(["e", "k", "k"])
    review("pets", SplitParams(), findings, ask=lambda question, choices: next(answers))
    asked = []
    review("pets", SplitParams(), findings, ask=lambda question, choices: asked.append(question) or "k")
    assert list(pd.read_csv("reviews/pets/exclude.csv")["path"]) == ["cat/1.jpg"]
    assert list(pd.read_csv("reviews/pets/kept.csv")["path"]) == ["dog/2.jpg", "cat/blank.jpg"]
    assert asked == []  # kept is an answer too
    assert pd.read_csv("reviews/pets/relabel.csv").empty


def test_an_interrupted_walk_keeps_the_answers_given(findings, monkeypatch):
    monkeypatch.chdir(findings.root)

    def stop_at_the_second(question, choices, answers=iter(["e"])):
        return next(answers)  # StopIteration stands for Ctrl+C

    with pytest.raises(StopIteration):
        review("pets", SplitParams(), findings, ask=stop_at_the_second)
    assert list(pd.read_csv("reviews/pets/exclude.csv")["path"]) == ["cat/1.jpg"]


def test_review_before_the_audit_says_what_to_run(paths):
    with pytest.raises(PipelineError, match=r"dvc repro audit@pets"):
        review("pets", SplitParams(), paths)


def test_the_terminal_walk_asks_again_until_an_answer_is_one_of_the_choices(findings, monkeypatch):
    monkeypatch.chdir(findings.root)
    monkeypatch.setattr("sys.stdin", io.StringIO("x\nr\n\ne\n"))
    assert review("pets", SplitParams(), findings) == {"excluded": 1, "relabelled": 1, "kept": 1}
    assert list(pd.read_csv("reviews/pets/relabel.csv")["path"]) == ["cat/1.jpg"]
