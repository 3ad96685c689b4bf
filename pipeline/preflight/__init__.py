"""Checks to run on a model before a long training run: lr_find (`pipeline lr-find`: the learning-rate range test),
sanity (`pipeline sanity overfit`: a few images learned by heart)."""
