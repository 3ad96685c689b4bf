"""`pipeline tune --dashboard`: optuna-dashboard serving the study's storage on 127.0.0.1 (its API lists the study);
without a study yet, one error line saying what to run."""

import http.client
import json
import subprocess
import sys
import time

import pytest
from test_cli import assert_clean_error, invoke

from pipeline.tuning.study import Study
from tests.helpers.postgres import free_port


def test_without_a_study_the_dashboard_is_one_error_line_naming_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_clean_error(invoke("tune", "catsdogs_cnn", "--dashboard"), "no study of catsdogs_cnn yet", "pipeline tune")


def studies(port: int, timeout_s: float = 60) -> list[dict]:
    """The studies the dashboard on `port` lists, once it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/studies")
            return json.loads(connection.getresponse().read())["study_summaries"]
        except OSError:
            assert time.monotonic() < deadline, "the dashboard never answered"
            time.sleep(0.5)


@pytest.mark.slow
def test_the_dashboard_serves_the_study_on_localhost(tmp_path):
    storage = tmp_path / "study.sqlite3"
    Study("catsdogs_cnn", storage, "val_loss").open()
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "tune", "catsdogs_cnn", "--dashboard", "--port", str(port),
               "--storage", f"sqlite:///{storage}"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert [study["study_name"] for study in studies(port)] == ["tune-catsdogs_cnn"]
    finally:
        server.terminate()
        server.wait(timeout=30)
