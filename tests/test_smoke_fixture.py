from pipeline.train import train
from pipeline.evaluate import evaluate

def test_prepared_runs(prepared, tiny_params):
    train("catsdogs_cnn", tiny_params, prepared)
    m = evaluate("catsdogs_cnn", prepared, "cpu")
    assert 0 <= m["accuracy"] <= 1
