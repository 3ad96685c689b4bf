"""`arch: timm`: any timm backbone by `model_name`, its classifier sized to the dataset's classes, its own pretrained
weights optional.

timm is imported where a timm model is built (importing it takes seconds, which every stage would pay). The
backbone's own preprocessing (input size, mean and std of its pretrained weights) is recorded beside the model
(`backbone_facts`): the model file and the ONNX metadata carry it, though the model is fed the dataset's own size
and statistics, as every model of the pipeline is. Offline, pretrained weights come from a file put in place by hand
(`timm_weights_file`), which the error names.
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config.archs import TimmArgs
from pipeline.core.errors import PipelineError
from pipeline.models.registry import register

IMAGENET_CHANNELS = 3
BACKBONE_KEYS = ("input_size", "mean", "std")


def timm_weights_file(model_name: str) -> Path:
    """Where a timm model's pretrained weights may be put by hand: $TORCH_HOME/hub/checkpoints/timm/<name>.safetensors
    (a .pth state dict under that name works too)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / "timm" / f"{model_name}.safetensors"


def _timm_pretrained(model: nn.Module, args: TimmArgs) -> None:
    """Load the backbone's default pretrained weights when `pretrained` (all but the new classifier): from the hand-
    placed file if there is one, else from the Hugging Face hub (or the URL timm knows), cached there."""
    if not args.pretrained:
        return
    from timm.models import load_pretrained

    config, local = dict(model.pretrained_cfg), timm_weights_file(args.model_name)
    if local.is_file():
        config["file"] = str(local)
    try:
        load_pretrained(model, pretrained_cfg=config, num_classes=model.num_classes, in_chans=IMAGENET_CHANNELS)
    except (OSError, RuntimeError, ValueError) as exc:  # no network, no such file on the hub, a bad file
        source = f"https://huggingface.co/{config['hf_hub_id']}" if config.get("hf_hub_id") else config.get("url")
        said = " ".join(str(exc).split())[:300]
        raise PipelineError(
            f"could not get the pretrained weights of timm model {args.model_name!r} ({said}); download its "
            f"model.safetensors from {source} by hand to {local}, or set its pretrained: false to train from scratch"
        ) from None


@register("timm", weights=_timm_pretrained)
def timm_net(args: TimmArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """`timm.create_model(model_name, num_classes=outputs, in_chans=in_channels)`, without its weights (those are
    `_timm_pretrained`'s); an unknown name is an error naming some close ones."""
    import timm

    if not timm.is_model(args.model_name):
        close = timm.list_models(f"*{args.model_name.split('.')[0][:6]}*")[:8]
        raise PipelineError(
            f"model_name: {args.model_name!r} is not a timm model" + (f" (close: {', '.join(close)})" if close else "")
            + "; `python -c 'import timm; print(timm.list_models())'` lists them"
        )
    if args.pretrained and in_channels != IMAGENET_CHANNELS:
        raise PipelineError(
            f"timm {args.model_name} with pretrained weights needs RGB images, got {in_channels} channel(s); set "
            "preprocess.<dataset>.color: rgb, or pretrained: false to train from scratch"
        )
    return timm.create_model(args.model_name, pretrained=False, num_classes=outputs, in_chans=in_channels)


def backbone_facts(model: nn.Module) -> dict[str, Any] | None:
    """A timm backbone's own preprocessing, from its pretrained config: input size (channels, height, width), mean
    and std on the [0, 1] scale; None for a model that is not timm's."""
    config = getattr(model, "pretrained_cfg", None)
    if not isinstance(config, dict):
        return None
    return {key: [float(value) if key != "input_size" else int(value) for value in config[key]] for key in BACKBONE_KEYS}
