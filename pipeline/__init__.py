"""Reproducible image-classification pipeline."""
