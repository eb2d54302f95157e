"""Video backbones with one feature interface (see ``base.Backbone``): C3D, C3D-BN, R3D (also the IR/LA variant),
R(2+1)D, S3D-G, R2D3D, the 3D ResNet-50 slow pathway, the 2D ResNet-18 on stacked frames; and the MLP
``ProjectionHead`` used on their embeddings by contrastive tasks. Each architecture file registers its builders."""
from train.backbones import c3d, r2d3d, r2plus1d, resnet2d, resnet3d, resnet3d_ir, s3dg, slow_r50  # noqa: F401
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
