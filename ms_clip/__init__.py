"""ms_clip: CLIP for MindSpore with MindFormers' user API.

Public API (explicit, no star re-exports). Heavy submodules (training, pipelines) are imported
lazily so ``import ms_clip`` stays fast and never needs torch.
"""
from ms_clip.errors import MsClipError
from ms_clip.models import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, ConfigError, clip_logits
from ms_clip.models import BertConfig, ChineseCLIPConfig, ChineseCLIPModel
from ms_clip.models import VisionTextDualEncoderConfig, VisionTextDualEncoderModel
from ms_clip.models import BaseConfig, BaseModel, PretrainedConfig, PreTrainedModel
# Importing the loader registers it with the models (their from_pretrained / checkpoint_name_or_path use it).
from ms_clip.loader import create_model, from_pretrained, get_tokenizer, list_models
# Importing ms_clip.auto registers the model catalog with the tokenizer and processors (their from_pretrained).
from ms_clip.auto import (AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer, MindFormerBook,
                          MindFormerConfig)

__version__ = "0.1.0"

_LAZY = {
    # name -> module that defines it
    "CLIPTokenizer": "ms_clip.tokenizer",
    "tokenize": "ms_clip.tokenizer",
    "BertTokenizer": "ms_clip.bert_tokenizer",
    "CLIPImageProcessor": "ms_clip.processor",
    "CLIPProcessor": "ms_clip.processor",
    "load_image": "ms_clip.processor",
    "ImageLoadError": "ms_clip.processor",
    "CLIPTrainTransform": "ms_clip.processor",
    "ClipLoss": "ms_clip.loss",
    "Trainer": "ms_clip.trainer",
    "pipeline": "ms_clip.pipelines",
    "ZeroShotImageClassificationPipeline": "ms_clip.pipelines",
    "CLIPWithLoss": "ms_clip.loss",
    "convert_weight": "ms_clip.convert",
}

__all__ = ["CLIPConfig", "CLIPModel", "CLIPTextConfig", "CLIPVisionConfig", "ConfigError", "MsClipError",
           "clip_logits", "create_model", "from_pretrained", "list_models", "get_tokenizer", "BertConfig",
           "ChineseCLIPConfig", "ChineseCLIPModel", "VisionTextDualEncoderConfig", "VisionTextDualEncoderModel",
           "PreTrainedModel", "BaseModel", "BaseConfig", "PretrainedConfig",
           "AutoConfig", "AutoModel", "AutoTokenizer", "AutoProcessor", "AutoImageProcessor", "MindFormerBook",
           "MindFormerConfig", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ms_clip' has no attribute {name!r}")
