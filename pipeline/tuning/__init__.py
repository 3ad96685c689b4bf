"""`pipeline tune`: a model's params searched with Optuna, every trial a DVC experiment: study (the study, its
trials and the seed check of its winner), space (the search space), trials (a trial as `dvc exp run`, watched and
pruned), storage (SQLite or a database shared by workers), workers (`--workers N`), dashboard (`--dashboard`), text
(what it prints)."""
