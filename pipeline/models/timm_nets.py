"""`arch: timm`: any timm backbone by `model_name`, its classifier sized to the dataset's classes, its own pretrained
weights optional.

timm is imported where a timm model is built (importing it takes seconds, which every stage would pay). The
backbone's own preprocessing (input size, mean and std of its pretrained weights) is recorded beside the model
(`backbone_facts`): the model file and the ONNX metadata carry it, though the model is fed the dataset's own size
and statistics, as every model of the pipeline is. Pretrained weights are fetched by the `weights@<model>` stage
(`TIMM_PRETRAINED`), or taken from the file the model's `weights` key names.
"""

from typing import Any

import torch
from torch import nn

from pipeline.config.archs import TimmArgs
from pipeline.core.errors import PipelineError
from pipeline.models.pretrained import Upstream
from pipeline.models.registry import Pretrained, register

IMAGENET_CHANNELS = 3
BACKBONE_KEYS = ("input_size", "mean", "std")


def _timm_reference(args: TimmArgs) -> nn.Module:
    """The published timm model (its default classifier, RGB input): the shapes its weights have."""
    import timm

    _require_timm_model(args.model_name)
    return timm.create_model(args.model_name, pretrained=False)


def _timm_upstream(args: TimmArgs) -> Upstream:
    """The backbone's default pretrained weights, from the Hugging Face hub (or the URL timm knows), cached there."""
    config = _pretrained_cfg(args.model_name)
    url = f"https://huggingface.co/{config.hf_hub_id}" if config.hf_hub_id else config.url or ""
    return Upstream(
        source={"from": "timm", "model_name": args.model_name, "hf_hub_id": config.hf_hub_id or "", "url": url},
        fetch=lambda: _timm_fetch(args.model_name),
        by_hand=f"a file the model's `weights:` names (model.safetensors from {url})",
    )


def _timm_fetch(model_name: str) -> dict[str, torch.Tensor]:
    """The pretrained weights as timm loads them into its own model (its key remapping applied): that model's state
    dict."""
    import timm

    return timm.create_model(model_name, pretrained=True).state_dict()


def _timm_classifier(args: TimmArgs) -> tuple[str, ...]:
    """The key prefixes of the model's classifier, which is sized to the dataset's classes and starts fresh."""
    names = _pretrained_cfg(args.model_name).classifier or ()
    return tuple(f"{name}." for name in ((names,) if isinstance(names, str) else names))


def _pretrained_cfg(model_name: str) -> Any:
    """timm's pretrained config of a model (its weights' hub id, URL, classifier), without building the model."""
    from timm.models import get_pretrained_cfg

    _require_timm_model(model_name)
    return get_pretrained_cfg(model_name)


TIMM_PRETRAINED = Pretrained(upstream=_timm_upstream, reference=_timm_reference, fresh=_timm_classifier)


@register("timm", pretrained=TIMM_PRETRAINED)
def timm_net(args: TimmArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """`timm.create_model(model_name, num_classes=outputs, in_chans=in_channels)`, without its weights (the
    `weights@<model>` stage fetches them, `TIMM_PRETRAINED`); an unknown name is an error naming some close ones."""
    import timm

    _require_timm_model(args.model_name)
    if args.pretrained and in_channels != IMAGENET_CHANNELS:
        raise PipelineError(
            f"timm {args.model_name} with pretrained weights needs RGB images, got {in_channels} channel(s); set "
            "preprocess.<dataset>.color: rgb, or pretrained: false to train from scratch"
        )
    return timm.create_model(args.model_name, pretrained=False, num_classes=outputs, in_chans=in_channels)


def _require_timm_model(model_name: str) -> None:
    """An unknown timm model name is an error naming the key and some close names."""
    import timm

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('.')[0][:6]}*")[:8]
        raise PipelineError(
            f"model_name: {model_name!r} is not a timm model" + (f" (close: {', '.join(close)})" if close else "")
            + "; `python -c 'import timm; print(timm.list_models())'` lists them"
        )


def backbone_facts(model: nn.Module) -> dict[str, Any] | None:
    """A timm backbone's own preprocessing, from its pretrained config: input size (channels, height, width), mean
    and std on the [0, 1] scale; None for a model that is not timm's."""
    config = getattr(model, "pretrained_cfg", None)
    if not isinstance(config, dict):
        return None
    return {key: [float(value) if key != "input_size" else int(value) for value in config[key]] for key in BACKBONE_KEYS}
