"""The repository's own upkeep, not a user feature: the generators of dvc.yaml's code deps (deps) and of the docs'
reference pages and tables (docs_pages, docs_params, docs_cli, docs_results), and the benches of training speed,
time to accuracy and serving speed (train_bench, accuracy_bench, serve_bench). It may import any layer but the
command line; nothing imports it but the command line."""
