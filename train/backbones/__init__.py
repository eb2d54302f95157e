"""Video backbones with one feature interface (see ``base.Backbone``): C3D, C3D-BN, R3D, R(2+1)D; and the
MLP ``ProjectionHead`` used on their embeddings by contrastive tasks."""
from train.backbones import c3d, r2plus1d, resnet3d, resnet3d_ir, slow_r50  # noqa: F401  (each registers its builders)
from train.backbones.base import POOLED_STAGES, Backbone, global_average_pool
from train.backbones.factory import BACKBONES, build_backbone, load_backbone, save_backbone
from train.backbones.projection import ProjectionHead

__all__ = [
    "BACKBONES",
    "POOLED_STAGES",
    "ProjectionHead",
    "Backbone",
    "build_backbone",
    "global_average_pool",
    "load_backbone",
    "save_backbone",
]
