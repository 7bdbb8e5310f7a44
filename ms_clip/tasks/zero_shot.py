"""The ``zero_shot_image_classification`` task: evaluate a CLIP model on a labelled image set
(CIFAR-100 by default) and predict labels for arbitrary images.

``RUN_CONFIG_SCHEMA`` holds this task's run-YAML sections (MindFormers' names, mindformers-api.md
§3, plus ours marked "Ours"); ``evaluate`` and ``predict`` are what ``Trainer`` and
``run_mindformer.py --run_mode eval|predict`` call with the validated run config.

Differences from MindFormers, on purpose:

* class embeddings come from OpenAI's 18 templates, ensembled (``zero_shot.templates: openai``);
  ``templates: hypothesis_template`` gives MindFormers' single ``data_loader.hypothesis_template``;
* class names have underscores replaced by spaces, and 32x32 images are upsampled with PIL
  bicubic (MindFormers' yaml used a bilinear Resize);
* ``evaluate`` returns its metrics (top-1 and top-5) and writes them with per-class accuracy.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ms_clip.data.classification import (DatasetError, build_classification_dataset, load_classification_dataset,
                                         read_classnames)
from ms_clip.eval.templates import resolve_templates
from ms_clip.eval.zero_shot import (DEFAULT_LOGIT_SCALE, accuracy, build_zero_shot_classifier, check_labels,
                                    encode_images, per_class_accuracy, zero_shot_scores)

logger = logging.getLogger(__name__)

__all__ = ["RUN_CONFIG_SCHEMA", "RUN_CONFIG_CHECKS", "LOADER_LAYOUTS", "evaluate", "predict", "resolve_eval_templates"]

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# data_loader.type -> dataset layout read by ms_clip.data.classification.
LOADER_LAYOUTS = {
    "Cifar100DataLoader": "cifar100",
    "Cifar10DataLoader": "cifar10",  # ours
    "ImageFolderDataLoader": "image_folder",  # ours: <dataset_dir>/<class name>/<images>
}
HYPOTHESIS_TEMPLATE_KEYWORD = "hypothesis_template"

RUN_CONFIG_SCHEMA: Dict[str, Any] = {
    "eval_dataset": {
        "data_loader": {
            "type": "Cifar100DataLoader",  # Cifar100DataLoader | Cifar10DataLoader | ImageFolderDataLoader
            "dataset_dir": "./cifar-100-python",  # the cifar-100-python folder or its parent
            # MindFormers' columns; the text column is not materialised per sample here: the class
            # embeddings are computed once (and cached) instead of re-encoding every prompt per image.
            "column_names": ["image", "text", "label"],
            "stage": "test",  # train | test | all
            "fine_label": True,  # CIFAR-100: 100 fine classes, or the 20 coarse superclasses
            "shuffle": False,
            # MindFormers' single prompt; used when zero_shot.templates is 'hypothesis_template'.
            "hypothesis_template": "a picture of {}",
        },
        "tokenizer": {"type": "CLIPTokenizer", "pad_token": "!", "vocab_file": None},
        "text_transforms": {"type": "TokenizerForward", "max_length": 77, "padding": "max_length"},
        # PIL bicubic resize of the short side + center crop (OpenAI), then /255 and normalize.
        "transforms": [
            {"type": "Resize", "size": 224, "interpolation": "cubic"},
            {"type": "CenterCrop", "size": 224},
            {"type": "ToTensor"},
            {"type": "Normalize", "mean": CLIP_MEAN, "std": CLIP_STD, "is_hwc": False},
        ],
        "num_parallel_workers": 8,
        "python_multiprocessing": False,
        "drop_remainder": False,
        "batch_size": 32,
        "repeat": 1,
        "numa_enable": False,
        "prefetch_size": 30,
        "seed": 2022,
    },
    # MindFormers repeats the dataset here via a YAML anchor; eval_dataset is what is used.
    "eval_dataset_task": {"type": "ZeroShotImageClassificationDataset", "dataset_config": None},
    "metric": {"type": "Accuracy"},
    "top_k": 3,  # labels per image returned by predict
    "save_file": "results.txt",  # predict's results (JSON lines), under output_dir unless absolute
    # Predict inputs when predict() gets none: a path, directory, URL or a list of them (--predict_data).
    "input_data": None,
    # Ours.
    "zero_shot": {
        # openai (OpenAI's 18 CIFAR templates, ensembled) | hypothesis_template (MindFormers' single
        # data_loader.hypothesis_template) | one template string with {} | a list of templates.
        # None means openai.
        "templates": None,
        # Class names used in the prompts; None: the dataset's (underscores -> spaces).
        "classnames": None,
        # Softmax temperature for predict scores; None: the model's exp(logit_scale). See
        # ms_clip.eval.zero_shot.DEFAULT_LOGIT_SCALE. Accuracy does not depend on it.
        "logit_scale": DEFAULT_LOGIT_SCALE,
        "cache_class_embeddings": True,
        "cache_dir": None,  # None: $MS_CLIP_HOME/zero_shot_classifiers
        "text_batch_size": 256,  # prompts per text-tower call
        "topk_accuracy": [1, 5],  # accuracies evaluate reports
        "metrics_file": "zero_shot_metrics.json",  # overall + per-class, under output_dir
        "per_class_file": "zero_shot_per_class_accuracy.csv",
        "predict_batch_size": 8,  # images per forward pass in predict (--predict_batch_size)
    },
}


def _check_config(config: Dict[str, Any]) -> None:
    from ms_clip.run_config import RunConfigError, validate

    dataset_config = config["eval_dataset_task"].get("dataset_config")
    if dataset_config is not None:
        validate(dataset_config, RUN_CONFIG_SCHEMA["eval_dataset"], "eval_dataset_task.dataset_config",
                 fill_defaults=False)
    loader = config["eval_dataset"]["data_loader"]
    if loader["type"] not in LOADER_LAYOUTS:
        raise RunConfigError(f"eval_dataset.data_loader.type: expected one of {list(LOADER_LAYOUTS)}, got "
                             f"{loader['type']!r}")
    if loader["stage"] not in ("train", "test", "all"):
        raise RunConfigError(f"eval_dataset.data_loader.stage: expected train, test or all, got {loader['stage']!r}")
    if config["metric"].get("type") != "Accuracy":
        raise RunConfigError(f"metric.type: expected 'Accuracy', got {config['metric'].get('type')!r}")
    zs = config["zero_shot"]
    try:
        resolve_eval_templates(config)
    except ValueError as err:
        raise RunConfigError(f"zero_shot.templates: {err}") from None
    ks = zs["topk_accuracy"]
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise RunConfigError(f"zero_shot.topk_accuracy: expected a list of positive integers, got {ks!r}")
    if config["top_k"] is not None and config["top_k"] < 1:
        raise RunConfigError(f"top_k: expected a positive integer, got {config['top_k']!r}")


RUN_CONFIG_CHECKS = [_check_config]


# ----------------------------------------------------------------------------- helpers


def resolve_eval_templates(config: Dict[str, Any]) -> tuple:
    """The templates a run config asks for (see ``zero_shot.templates``)."""
    spec = config["zero_shot"]["templates"]
    if spec is None:
        spec = "openai"
    if spec == HYPOTHESIS_TEMPLATE_KEYWORD:
        spec = config["eval_dataset"]["data_loader"]["hypothesis_template"]
        return resolve_templates(spec, "eval_dataset.data_loader.hypothesis_template")
    return resolve_templates(spec, "zero_shot.templates")


def _tokenizer(config: Dict[str, Any]):
    from ms_clip.tokenizer import CLIPTokenizer

    section = {k: v for k, v in config["eval_dataset"]["tokenizer"].items() if k != "type" and v is not None}
    return CLIPTokenizer(**section)


def _output_path(config: Dict[str, Any], name: str) -> str:
    if os.path.isabs(name):
        os.makedirs(os.path.dirname(name), exist_ok=True)
        return name
    out_dir = config.get("output_dir") or "."
    os.makedirs(out_dir, exist_ok=True)
    return os.path.join(out_dir, name)


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _layout(config: Dict[str, Any]) -> str:
    return LOADER_LAYOUTS[config["eval_dataset"]["data_loader"]["type"]]


def _classnames(config: Dict[str, Any], dataset_classnames: Sequence[str]) -> List[str]:
    override = config["zero_shot"]["classnames"]
    if override is None:
        return list(dataset_classnames)
    override = check_labels(override, "zero_shot.classnames")
    if len(override) != len(dataset_classnames):
        raise ValueError(f"zero_shot.classnames has {len(override)} names but the dataset has "
                         f"{len(dataset_classnames)} classes")
    return override


def _image_processor(model, config: Dict[str, Any]):
    """The CLIP image processor with the size, mean and std the ``eval_dataset.transforms`` list sets.

    The list is read by the training pipeline's parser (one reading of MindFormers' transform
    names); the pixels are made by ``CLIPImageProcessor``, which is identical to OpenAI's PIL
    bicubic preprocessing whatever interpolation the list names.
    """
    from ms_clip.data.pipeline import image_transform_from_config
    from ms_clip.processor import CLIPImageProcessor

    image_size = model.config.vision_config.image_size
    spec = image_transform_from_config(config["eval_dataset"]["transforms"], image_size, "eval_dataset.transforms")
    if spec.random_crop:
        raise ValueError("eval_dataset.transforms: RandomResizedCrop is a training augmentation; evaluation "
                         "uses Resize + CenterCrop")
    if spec.size != image_size:
        raise ValueError(f"eval_dataset.transforms crop images to {spec.size} but the model expects "
                         f"{image_size}x{image_size} (vision_config.image_size)")
    return CLIPImageProcessor(image_resolution=spec.size, mean=spec.mean, std=spec.std)


def _cache_setting(config: Dict[str, Any]) -> Union[bool, str]:
    zs = config["zero_shot"]
    return (zs["cache_dir"] or True) if zs["cache_class_embeddings"] else False


def _classifier(model, config: Dict[str, Any], classnames: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    return build_zero_shot_classifier(model, classnames, templates, tokenizer=_tokenizer(config),
                                      batch_size=config["zero_shot"]["text_batch_size"],
                                      context_length=config["eval_dataset"]["text_transforms"]["max_length"],
                                      cache=_cache_setting(config), use_tqdm=True)


# ----------------------------------------------------------------------------- evaluate


def evaluate(model, config: Dict[str, Any]) -> Dict[str, Any]:
    """Zero-shot top-k accuracy of ``model`` on ``config['eval_dataset']``.

    Returns ``{"top1": ..., "top5": ..., "Top1 Accuracy": ..., "num_samples", "num_classes",
    "num_templates"}`` (fractions in [0, 1]); logs ``Top1 Accuracy = {...}`` as MindFormers did;
    writes the metrics with per-class accuracy to ``output_dir`` (JSON and CSV).
    """
    from tqdm import tqdm

    section = config["eval_dataset"]
    loader = section["data_loader"]
    data = load_classification_dataset(loader["dataset_dir"], _layout(config), loader["stage"], loader["fine_label"])
    if len(data) == 0:
        raise DatasetError(f"{data.source}: the '{loader['stage']}' split holds no images")
    classnames = _classnames(config, data.classnames)
    templates = resolve_eval_templates(config)
    ks = sorted(set(config["zero_shot"]["topk_accuracy"]))
    model.set_train(False)

    processor = _image_processor(model, config)
    classifier = _classifier(model, config, classnames, templates)

    batch_size = section["batch_size"]
    dataset = build_classification_dataset(
        data, processor.preprocess_one, batch_size=batch_size, num_parallel_workers=section["num_parallel_workers"],
        python_multiprocessing=section["python_multiprocessing"], drop_remainder=section["drop_remainder"],
        shuffle=loader["shuffle"], seed=section["seed"], prefetch_size=section["prefetch_size"],
        numa_enable=section["numa_enable"])
    labels: List[np.ndarray] = []

    def pixel_batches():
        bar = tqdm(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True), total=dataset.get_dataset_size(),
                   desc="zero-shot eval", unit="batch")
        for pixels, label in bar:
            labels.append(label)
            yield pixels

    features = encode_images(model, pixel_batches(), batch_size)
    labels_np = np.concatenate(labels).astype(np.int64)
    scores = zero_shot_scores(features, classifier, DEFAULT_LOGIT_SCALE)
    acc = accuracy(scores, labels_np, ks)

    result: Dict[str, Any] = {f"top{k}": acc[k] for k in ks}
    result["Top1 Accuracy"] = acc.get(1, accuracy(scores, labels_np, (1,))[1])
    result.update(num_samples=int(len(labels_np)), num_classes=len(classnames), num_templates=len(templates))
    # MindFormers logged `logger.info('%s = %s', name, str(output))` with output {'Top1 Accuracy': value}.
    logger.info("%s = %s", "Top1 Accuracy", str({"Top1 Accuracy": result["Top1 Accuracy"]}))
    for k in ks:
        if k != 1:
            logger.info("%s = %s", f"Top{k} Accuracy", str({f"Top{k} Accuracy": acc[k]}))

    per_class = per_class_accuracy(scores, labels_np, classnames, ks)
    zs = config["zero_shot"]
    metrics_path = _output_path(config, zs["metrics_file"])
    _write_text(metrics_path, json.dumps({**result, "dataset": data.source, "split": loader["stage"],
                                          "templates": list(templates), "per_class": per_class}, indent=2) + "\n")
    csv_path = _output_path(config, zs["per_class_file"])
    with open(csv_path + ".tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(per_class[0]))
        writer.writeheader()
        writer.writerows(per_class)
    os.replace(csv_path + ".tmp", csv_path)
    logger.info("zero-shot metrics written to %s and %s", metrics_path, csv_path)
    return result


# ----------------------------------------------------------------------------- predict


def _default_labels(config: Dict[str, Any]) -> List[str]:
    if config["zero_shot"]["classnames"] is not None:
        return check_labels(config["zero_shot"]["classnames"], "zero_shot.classnames")
    loader = config["eval_dataset"]["data_loader"]
    try:
        return read_classnames(loader["dataset_dir"], _layout(config), loader["fine_label"])
    except DatasetError as err:
        raise ValueError(f"predict needs candidate labels: none were given and the eval dataset's class names "
                         f"could not be read ({err}). Pass candidate_labels=[...], set zero_shot.classnames, or "
                         f"point eval_dataset.data_loader.dataset_dir (--eval_dataset_dir) at the dataset") from None


def predict(model, config: Dict[str, Any], input_data: Any = None, top_k: Optional[int] = None,
            candidate_labels: Optional[Sequence[str]] = None,
            hypothesis_template: Union[str, Sequence[str], None] = None) -> List[List[Dict[str, Any]]]:
    """Classify images against candidate labels; one sorted ``[{"score", "label"}]`` list per image.

    Args:
        input_data: an image, path, directory, URL or a list of them; default ``config['input_data']``.
        top_k: labels per image; default ``config['top_k']``.
        candidate_labels: default ``zero_shot.classnames``, else the eval dataset's class names.
        hypothesis_template: a template (or list) replacing the configured ``zero_shot.templates``.

    The results are also written (one JSON object per image and line) to ``save_file`` under
    ``output_dir`` and logged.
    """
    from ms_clip.pipelines import ZeroShotImageClassificationPipeline, expand_image_inputs

    if input_data is None:
        input_data = config.get("input_data")
    if input_data is None or (isinstance(input_data, (list, tuple)) and not input_data):
        raise ValueError("predict needs input_data: an image, path, directory, URL or a list of them "
                         "(Trainer.predict(input_data=...) or run_mindformer.py --predict_data PATH ...)")
    labels = check_labels(candidate_labels) if candidate_labels is not None else _default_labels(config)
    templates = hypothesis_template if hypothesis_template is not None else resolve_eval_templates(config)
    top_k = top_k if top_k is not None else (config.get("top_k") or 1)
    zs = config["zero_shot"]
    pipe = ZeroShotImageClassificationPipeline(model, candidate_labels=labels, hypothesis_template=templates,
                                               tokenizer=_tokenizer(config), image_processor=_image_processor(model, config),
                                               batch_size=zs["predict_batch_size"], logit_scale=zs["logit_scale"],
                                               context_length=config["eval_dataset"]["text_transforms"]["max_length"],
                                               cache=_cache_setting(config))
    items = expand_image_inputs(input_data)
    results = pipe([img for _, img in items], top_k=top_k)

    path = _output_path(config, config.get("save_file") or "zero_shot_image_classification_result.txt")
    lines = [json.dumps({"input": name, "predictions": preds})
             for (name, _), preds in zip(items, results)]
    _write_text(path, "\n".join(lines) + "\n")
    logger.info("output result is: %s", results)
    logger.info("predictions for %d images written to %s", len(results), path)
    return results
