"""Commands that are not stages: benchmarks, the learning-rate range test, sanity checks, synthetic images and the
generator of dvc.yaml's code deps. The CLI runs them; no stage imports them."""
