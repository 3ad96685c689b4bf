"""What the tests share besides fixtures (those are in tests/conftest.py): tiny params, generated files and image
trees, model files, a tiny trained run, the repository copied for `dvc repro`, a local S3. Imported one way:
`from tests.helpers.<module> import ...`."""
