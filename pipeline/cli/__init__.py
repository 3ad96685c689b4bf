"""The `pipeline` command line: stage commands (what dvc.yaml runs) and tools."""
