"""`pipeline audit review NAME --web` over HTTP, without a browser: findings, images, decisions written at once into
the files split reads, undo, the refusals, and the token off loopback."""

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pipeline.core.errors import PipelineError
from pipeline.serving.review import create_review_app, open_review
from tests.helpers.review import DATASET, audited, small_tree

TOKEN = "review-token-0123456789"


@pytest.fixture(scope="module")
def tree():
    return small_tree()


@pytest.fixture
def review(paths, tree):
    params = audited(paths, tree)
    return open_review(DATASET, params.split[DATASET], paths)


@pytest.fixture
def client(review):
    return TestClient(create_review_app(review))


def test_the_page_lists_every_kind_of_finding_with_its_images(client, tree):
    assert "<script>" in client.get("/").text
    found = client.get("/findings").json()
    assert found["classes"] == ["blue", "green", "red"]
    kinds = [finding["kind"] for finding in found["findings"]]
    assert kinds == ["label_issues"] * 2 + ["outliers"] * 2 + ["image_quality"] * 2 + ["near_duplicates"] * 2
    label_issue = found["findings"][0]
    assert label_issue["suggested"] == tree.moved[label_issue["images"][0]["path"]]
    assert [image["path"] for image in found["findings"][-1]["images"]] == list(tree.copies[-1])
    assert found["findings"][-1]["images"][1]["split"] == "test"
    assert found["decisions"] == {}
    png, jpeg = client.get("/image", params={"path": tree.copies[0][0]}), client.get("/image", params={"path": tree.copies[0][1]})
    assert (png.headers["content-type"], jpeg.headers["content-type"]) == ("image/png", "image/jpeg")
    assert png.content == tree.files[tree.copies[0][0]]


def test_each_decision_is_written_at_once_and_undo_takes_it_back(client, review, tree):
    relabelled, excluded = min(tree.moved), tree.blanks[0]
    answer = client.post("/decisions", json={"path": relabelled, "action": "relabel", "label": tree.moved[relabelled]})
    assert answer.json() == {"path": relabelled, "decision": {"action": "relabel", "label": tree.moved[relabelled]}}
    assert pd.read_csv(review.files.relabel).to_dict("list") == {"path": [relabelled], "label": [tree.moved[relabelled]]}
    client.post("/decisions", json={"path": excluded, "action": "exclude"})
    client.post("/decisions", json={"path": tree.copies[0][1], "action": "keep"})
    assert list(pd.read_csv(review.files.exclude)["path"]) == [excluded]
    assert list(pd.read_csv(review.files.kept)["path"]) == [tree.copies[0][1]]
    assert set(client.get("/findings").json()["decisions"]) == {relabelled, excluded, tree.copies[0][1]}
    client.post("/decisions", json={"path": excluded, "action": "undecided"})
    assert pd.read_csv(review.files.exclude).empty
    assert excluded not in client.get("/findings").json()["decisions"]


@pytest.mark.parametrize(
    ("request_body", "status", "said"),
    [
        ({"path": "red/nowhere.png", "action": "exclude"}, 404, "no finding"),
        ({"path": "PATH", "action": "relabel", "label": "purple"}, 422, "blue, green, red"),
        ({"path": "PATH", "action": "relabel"}, 422, "None"),
        ({"path": "PATH", "action": "delete"}, 422, "keep"),
        ({"action": "exclude"}, 422, "path"),
    ],
)
def test_a_bad_request_is_refused_with_a_reason_and_the_server_goes_on(client, tree, request_body, status, said):
    body = {key: tree.blanks[0] if value == "PATH" else value for key, value in request_body.items()}
    answer = client.post("/decisions", json=body)
    assert answer.status_code == status
    assert said in str(answer.json()["detail"])
    assert client.get("/image", params={"path": "../../etc/passwd"}).status_code == 404
    assert client.get("/findings").json()["decisions"] == {}


def test_with_a_token_every_route_but_health_asks_for_it(review):
    guarded = TestClient(create_review_app(review, token=TOKEN))
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/findings").status_code == 401
    assert "token" in guarded.get("/").text
    assert guarded.post("/decisions", json={"path": "x", "action": "keep"}).status_code == 401
    assert guarded.get("/findings", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    assert guarded.get("/findings").status_code == 200  # the login's cookie


def test_off_loopback_the_command_refuses_to_serve_without_a_token(paths, tree, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli.main import app

    audited(paths, tree)
    monkeypatch.chdir(paths.root)
    monkeypatch.delenv("PIPELINE_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["audit", "review", DATASET, "--web", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "--host 0.0.0.0: without a token" in result.output


def test_a_review_before_the_audit_says_what_to_run(paths, tree):
    params = audited(paths, tree)
    (paths.audit_dir(DATASET) / "outliers.csv").unlink()
    with pytest.raises(PipelineError, match=r"no outliers\.csv; run `dvc repro audit@planted`"):
        open_review(DATASET, params.split[DATASET], paths)
