"""The ``contrastive_language_image_pretrain`` task: train (or fine-tune) CLIP on image-caption data
and evaluate image<->text retrieval.

``RUN_CONFIG_SCHEMA`` holds this task's run-YAML sections (MindFormers' names, plus ours marked
"Ours"); ``train`` and ``evaluate`` are what ``Trainer`` and ``run_mindformer.py`` call.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

__all__ = ["RUN_CONFIG_SCHEMA", "RUN_CONFIG_CHECKS", "DATASET_SCHEMA"]

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# One dataset section (train_dataset / eval_dataset), MindFormers' keys plus ours.
DATASET_SCHEMA: Dict[str, Any] = {
    "data_loader": {
        # Flickr8kDataLoader: <dataset_dir>/Flickr8k_Dataset/Flickr8k_Dataset/*.jpg + Flickr8k_text/.
        # JsonCaptionDataLoader (ours): <dataset_dir>/{en_train,en_val}.json lists of {"image", "caption": [...]}.
        # CsvCaptionDataLoader (ours): a .csv/.tsv/.jsonl file with one image path and caption(s) per row.
        "type": "Flickr8kDataLoader",
        "dataset_dir": "./checkpoint_download/Flickr8k",
        "stage": "train",  # Flickr8k: train | dev | test | all; JSON: train | val (dev/test read en_val.json)
        "column_names": ["image", "text"],
        "shuffle": None,  # Ours. None: shuffle for training, not for evaluation
        # Ours, JSON/CSV layouts: an explicit annotation file (default: picked from stage), where images live
        # (default: dataset_dir, or the annotation file's folder), and the CSV/JSONL columns and separator.
        "annotation_file": None,
        "image_dir": None,
        "image_column": "image",
        "caption_column": "caption",
        "separator": None,  # None: from the extension (.csv ',', .tsv '\t')
        # Ours: a corrupt or missing image is skipped and counted in the log ("skip") or stops the run
        # naming the file ("fail").
        "on_bad_image": "skip",
    },
    "text_transforms": {
        # RandomChoiceTokenizerForward: a fresh random caption per image and epoch (seeded by seed, epoch and
        # index; MindFormers re-seeded on every call and always used the 5th caption). TokenizerForward: the first.
        "type": "RandomChoiceTokenizerForward",
        "max_length": 77,
        "padding": "max_length",
        "random_seed": 2022,  # accepted for MindFormers YAMLs; the caption choice is seeded by `seed` below
    },
    # Image transforms, in MindFormers' names: Resize{size} + CenterCrop{size} (evaluation preprocessing),
    # or RandomResizedCrop{size, scale, ratio} (training augmentation), then ToTensor + Normalize{mean, std}.
    "transforms": [
        {"type": "Resize", "size": 224, "interpolation": "cubic"},
        {"type": "CenterCrop", "size": 224},
        {"type": "ToTensor"},
        {"type": "Normalize", "mean": CLIP_MEAN, "std": CLIP_STD, "is_hwc": False},
    ],
    "tokenizer": {"type": "CLIPTokenizer", "pad_token": "!", "vocab_file": None},
    "num_parallel_workers": 8,
    "python_multiprocessing": False,
    "drop_remainder": True,
    "batch_size": 32,
    "repeat": 1,
    "numa_enable": False,
    "prefetch_size": 30,
    "seed": 2022,
}


def _dataset_schema(stage: str, text_transform: str, drop_remainder: bool) -> Dict[str, Any]:
    schema = copy.deepcopy(DATASET_SCHEMA)
    schema["data_loader"]["stage"] = stage
    schema["text_transforms"]["type"] = text_transform
    schema["drop_remainder"] = drop_remainder
    return schema


RUN_CONFIG_SCHEMA: Dict[str, Any] = {
    "train_dataset": _dataset_schema("train", "RandomChoiceTokenizerForward", True),
    # MindFormers' YAMLs repeat the dataset here through a YAML anchor (dataset_config: *train_dataset);
    # train_dataset is what is used, dataset_config is checked against the same keys.
    "train_dataset_task": {"type": "ContrastiveLanguageImagePretrainDataset", "dataset_config": None},
    "eval_dataset": _dataset_schema("test", "TokenizerForward", False),
    "eval_dataset_task": {"type": "ContrastiveLanguageImagePretrainDataset", "dataset_config": None},
    # Ours: image<->text retrieval as CLIP_benchmark defines it (all captions per image).
    "metric": {"type": "ImageTextRetrieval", "recall_k": [1, 5, 10]},
    # Ours: where evaluate() writes its results (under output_dir unless absolute).
    "save_file": "retrieval_results.json",
}


def _check_datasets(config: Dict[str, Any]) -> None:
    from ms_clip.run_config import RunConfigError, validate

    for split in ("train", "eval"):
        dataset_config = config[f"{split}_dataset_task"].get("dataset_config")
        if dataset_config is not None:
            validate(dataset_config, RUN_CONFIG_SCHEMA[f"{split}_dataset"], f"{split}_dataset_task.dataset_config",
                     fill_defaults=False)
        loader = config[f"{split}_dataset"]["data_loader"]
        loaders = ("Flickr8kDataLoader", "JsonCaptionDataLoader", "CsvCaptionDataLoader")
        if loader["type"] not in loaders:
            raise RunConfigError(f"{split}_dataset.data_loader.type: expected one of {list(loaders)}, got "
                                 f"{loader['type']!r}")
        if loader["on_bad_image"] not in ("skip", "fail"):
            raise RunConfigError(f"{split}_dataset.data_loader.on_bad_image: expected 'skip' or 'fail', got "
                                 f"{loader['on_bad_image']!r}")
        text = config[f"{split}_dataset"]["text_transforms"]["type"]
        if text not in ("RandomChoiceTokenizerForward", "TokenizerForward"):
            raise RunConfigError(f"{split}_dataset.text_transforms.type: expected RandomChoiceTokenizerForward or "
                                 f"TokenizerForward, got {text!r}")


RUN_CONFIG_CHECKS = [_check_datasets]
