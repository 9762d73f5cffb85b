"""Networks and objectives of MAMP / MaskSem pre-training and of evaluation: tokens, encoder,
decoder, masking, targets, the EMA teacher with its Grad-CAM, heads, and the Pretrainer."""

from training.model.config import CamMode, MaskingKind, ModelConfig, PretrainConfig
from training.model.decoder import Decoder
from training.model.encoder import Encoder
from training.model.heads import Classifier, FinetuneHead, LinearHead, param_groups
from training.model.masking import TokenMask, gumbel_top_k_mask, motion_aware_scores, random_mask
from training.model.pretrainer import Pretrainer
from training.model.teacher import PartsError, Teacher
from training.model.tokens import ShapeError

__all__ = [
    "CamMode",
    "Classifier",
    "Decoder",
    "Encoder",
    "FinetuneHead",
    "LinearHead",
    "MaskingKind",
    "ModelConfig",
    "PartsError",
    "PretrainConfig",
    "Pretrainer",
    "ShapeError",
    "Teacher",
    "TokenMask",
    "gumbel_top_k_mask",
    "motion_aware_scores",
    "param_groups",
    "random_mask",
]
