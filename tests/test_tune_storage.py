"""Where a study lives: a URL's password masked, `postgresql://` meaning psycopg 3, and a database that cannot be
opened (no server, no driver) as one error line naming the URL and the fix."""

from pathlib import Path

from test_cli import assert_clean_error, invoke

from pipeline.tuning.storage import masked, url_of


def test_a_path_is_an_sqlite_file_and_postgresql_means_psycopg_3():
    assert url_of(Path("/tmp/s.sqlite3")) == "sqlite:////tmp/s.sqlite3"
    assert url_of("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert url_of("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_the_password_is_masked():
    assert masked("postgresql+psycopg://bob:s3cret@db.example:5432/optuna") == (
        "postgresql+psycopg://bob:***@db.example:5432/optuna"
    )


def test_an_unreachable_database_is_one_error_line_with_the_password_masked():
    result = invoke("tune", "catsdogs_cnn", "--storage", "postgresql://bob:s3cret@127.0.0.1:1/optuna")
    assert_clean_error(result, "--storage postgresql+psycopg://bob:***@127.0.0.1:1/optuna", "server is running")
    assert "s3cret" not in result.stderr


def test_a_missing_driver_is_one_error_line_naming_what_to_install():
    result = invoke("tune", "catsdogs_cnn", "--storage", "mysql://bob:s3cret@127.0.0.1:1/optuna")
    assert_clean_error(result, "mysql://bob:***@127.0.0.1:1/optuna", "driver is not installed", "install")
