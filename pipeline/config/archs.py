"""Params of each architecture (the args of its factory in `pipeline.models`).

They live here, not beside the factories, so that reading params never imports torch and the data stages do not
depend on model code.
"""

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.config.base import Block, Count, FromList, Probability


class CatsDogsCnnArgs(Block):
    """The classic dogs-vs-cats convnet: three conv-maxpool-dropout blocks, a dense layer, one sigmoid output."""

    dropout: Annotated[tuple[Probability, Probability, Probability], FromList] = (0.25, 0.25, 0.5)
    dense: Count = 32


class MlpArgs(Block):
    """A multilayer perceptron on the flattened image: hidden layer widths, ReLU between."""

    hidden: Annotated[list[Count], Field(min_length=1)] = [256, 128]


BN_MOMENTUM = 0.1  # PyTorch's default, torch.nn.BatchNorm2d's own
BnMomentum = Annotated[float, Field(gt=0, le=1, description=(
    "PyTorch's BatchNorm momentum, as timm and torchvision take it: the weight of each training batch's mean and "
    "variance in the running ones (running = (1 - bn_momentum) * running + bn_momentum * batch). 0.1 is PyTorch's "
    "default (Keras momentum 0.9, the share kept); Keras's default 0.99 is 0.01 here. Higher follows recent batches "
    "faster. Only for a model with BatchNorm layers."
))]


class BatchNormArgs(Block):
    """`bn_momentum`: PyTorch's BatchNorm `momentum`, passed as it is to every BatchNorm layer: the weight of each
    training batch's statistics in the running mean and variance (Keras's `momentum`, the share kept, is 1 minus
    it). 0.1 is PyTorch's default; higher follows recent batches faster. Only for a model with BatchNorm layers."""

    bn_momentum: BnMomentum = BN_MOMENTUM

    @model_validator(mode="after")
    def _momentum_needs_batchnorm(self) -> "BatchNormArgs":
        if self.bn_momentum != BN_MOMENTUM and not getattr(self, "batchnorm", True):
            raise ValueError("bn_momentum is set, but the model has no BatchNorm layers (batchnorm: false)")
        return self


class CifarCnnArgs(BatchNormArgs):
    """Three blocks of two 3x3 convs and a 2x2 maxpool, then a dense layer; BatchNorm and Dropout optional."""

    widths: Annotated[tuple[Count, Count, Count], FromList] = (32, 64, 128)
    dense: Count = 128
    batchnorm: bool = False
    dropout: Annotated[tuple[Probability, Probability, Probability, Probability], FromList] = (0, 0, 0, 0)


class FineTuneArgs(Block):
    """fastai's `fine_tune`: for the first `freeze_epochs` epochs only the new head trains (the features frozen,
    their BatchNorm layers in eval mode), then the features train too, at `features_lr`."""

    freeze_epochs: Count


class Pretrainable(Block):
    """`pretrained`: start from published weights, which the `weights@<model>` stage fetches into
    data/weights/<model>/ (DVC tracks them); `weights`: a local file (a state dict, .safetensors or torch.save'd) to
    take instead of the upstream download, checked against the architecture."""

    pretrained: bool = False
    weights: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _weights_need_pretrained(self) -> "Pretrainable":
        if self.weights is not None and not self.pretrained:
            raise ValueError(
                f"weights is set ({self.weights}), but pretrained is false; set pretrained: true to start from that "
                "file, or weights: null"
            )
        return self

    def weights_request(self) -> dict[str, object] | None:
        """What decides the weights the model starts from (none without `pretrained`): the `weights@<model>` stage
        re-runs when it changes, and only then."""
        if not self.pretrained:
            return None
        return {"weights": self.weights, **self._upstream_choice()}

    def _upstream_choice(self) -> dict[str, object]:
        """The args that choose which upstream weights fit the architecture."""
        return {}


class FineTunable(BatchNormArgs):
    """A torchvision network with a new head, whose features may train at their own rate (`features_lr`, null: the
    model's lr) and be fine-tuned (`fine_tune`, null: off)."""

    @field_validator("fine_tune", check_fields=False)
    @classmethod
    def _not_frozen_for_good(cls, value: FineTuneArgs | None, info: ValidationInfo) -> FineTuneArgs | None:
        if value is not None and info.data.get("freeze"):
            raise ValueError("fine_tune unfreezes the features after freeze_epochs, but freeze is true; set freeze: false")
        return value


class Vgg16Args(FineTunable, Pretrainable):
    """torchvision VGG16 (`batchnorm`: its VGG16-BN variant), ImageNet weights optional; `freeze` keeps the conv
    features fixed, else they train at `features_lr` (null: the model's own lr)."""

    pretrained: bool = True
    batchnorm: bool = False
    freeze: bool = True
    features_lr: float | None = Field(None, gt=0)
    head: Count = 256
    dropout: Probability = 0.5
    fine_tune: FineTuneArgs | None = None

    def _upstream_choice(self) -> dict[str, object]:
        return {"batchnorm": self.batchnorm}


class ResNet18Args(FineTunable, Pretrainable):
    """torchvision ResNet-18, from scratch or from ImageNet weights (`pretrained`); `small_input` swaps the ImageNet
    stem for a 3x3 stride-1 conv, no maxpool; the features (all but `fc`) train at `features_lr`."""

    small_input: bool = True
    features_lr: float | None = Field(None, gt=0)
    fine_tune: FineTuneArgs | None = None


class AirbenchArgs(BatchNormArgs):
    """airbench94's CIFAR-10 net (Keller Jordan): a 2x2 conv stem of `stem` channels and GELU, three groups of
    (3x3 conv, 2x2 maxpool, BatchNorm, GELU, 3x3 conv, BatchNorm, GELU) at `widths`, a global maxpool, a linear head
    without bias whose logits are multiplied by `scale`. BatchNorm scales are fixed at 1 (only their shifts train)
    and each conv starts as an identity on its first input channels (airbench's dirac init)."""

    stem: Count = 24
    widths: Annotated[tuple[Count, Count, Count], FromList] = (64, 256, 256)
    scale: float = Field(1 / 9, gt=0)


class SmallResNetArgs(BatchNormArgs):
    """ResNet-9 (David Page's DAWNBench CIFAR-10 net) for photos: a prep conv (then a 2x2 maxpool when `stem_pool`,
    for inputs larger than CIFAR's), three conv-BatchNorm-ReLU-maxpool layers at `widths[1:]`, a residual block of two
    convs after the first and the last, a global maxpool and a bias-free linear head whose logits are multiplied by
    `scale`. Max pooling keeps a small, telling detail (an ear's shape) that an average would dilute."""

    widths: Annotated[tuple[Count, Count, Count, Count], FromList] = (32, 64, 128, 256)
    stem_pool: bool = True
    scale: float = Field(0.125, gt=0)


class TimmArgs(Pretrainable):
    """Any timm model by name (`timm.create_model(model_name, num_classes=...)`), e.g. resnet50, convnext_tiny,
    efficientnet_b0, `test_resnet` (a tiny one for tests); `pretrained`: its default pretrained weights, from the
    Hugging Face hub (or the `weights` file), fetched by the `weights@<model>` stage."""

    model_name: str = Field("resnet18", min_length=1)

    def _upstream_choice(self) -> dict[str, object]:
        return {"model_name": self.model_name}


ARCH_ARGS: dict[str, type[Block]] = {
    "catsdogs_cnn": CatsDogsCnnArgs,
    "mlp": MlpArgs,
    "cifar_cnn": CifarCnnArgs,
    "vgg16": Vgg16Args,
    "resnet18": ResNet18Args,
    "airbench": AirbenchArgs,
    "small_resnet": SmallResNetArgs,
    "timm": TimmArgs,
}
