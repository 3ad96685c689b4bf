"""A torch file crafted to run code when it is unpickled: what `weights_only` loading must refuse."""

from pathlib import Path

import torch


class _OpensAFile:
    """Unpickled, it calls `open(marker, "w")`: a harmless stand-in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def crafted_torch_file(path: Path, marker: Path, zip_format: bool = True) -> Path:
    """Save, in torch's zip or legacy format, a dict shaped like a checkpoint whose model creates `marker`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _OpensAFile(marker)}, path, _use_new_zipfile_serialization=zip_format)
    return path


def runs_code_when_trusted(path: Path, marker: Path) -> bool:
    """Whether loading the file without `weights_only` does create the marker: proof the file is a real threat."""
    torch.load(path, weights_only=False)
    return marker.exists()
