"""The ``zero_shot_image_classification`` task: evaluate a CLIP model on a labelled image set
(CIFAR-100 by default) and predict labels for arbitrary images.

``ZeroShotRunConfig`` (``RUN_CONFIG_CLASS``) holds this task's run-YAML sections (MindFormers' names,
plus ours marked "Ours"); ``evaluate`` and ``predict`` are what ``Trainer`` and
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
import io
import json
import logging
import os
from dataclasses import field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ms_clip.data.classification import (DatasetError, build_classification_dataset, load_classification_dataset,
                                         read_classnames)
from ms_clip.eval.templates import resolve_templates
from ms_clip.run_config import DatasetSection, RunConfig, RunConfigError, Section, section
from ms_clip.eval.zero_shot import (DEFAULT_LOGIT_SCALE, accuracy, build_zero_shot_classifier, check_labels,
                                    per_class_accuracy, zero_shot_scores)
from ms_clip.features import encode_images, is_chinese_clip, is_dual_encoder, tokenizer_for_model
from ms_clip.fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["RUN_CONFIG_CLASS", "ZeroShotRunConfig", "LOADER_LAYOUTS", "evaluate", "predict", "resolve_eval_templates"]

# data_loader.type -> dataset layout read by ms_clip.data.classification.
LOADER_LAYOUTS = {
    "Cifar100DataLoader": "cifar100",
    "Cifar10DataLoader": "cifar10",  # ours
    "ImageFolderDataLoader": "image_folder",  # ours: <dataset_dir>/<class name>/<images>
}
HYPOTHESIS_TEMPLATE_KEYWORD = "hypothesis_template"


# ----------------------------------------------------------------------------- run-config sections


@section
class ClassificationLoaderSection(Section):
    type: str = "Cifar100DataLoader"  # Cifar100DataLoader | Cifar10DataLoader | ImageFolderDataLoader
    dataset_dir: str = "./cifar-100-python"  # the cifar-100-python folder or its parent
    # MindFormers' columns; the text column is not materialised per sample here: the class
    # embeddings are computed once (and cached) instead of re-encoding every prompt per image.
    column_names: List[str] = field(default_factory=lambda: ["image", "text", "label"])
    stage: str = "test"  # train | test | all
    fine_label: bool = True  # CIFAR-100: 100 fine classes, or the 20 coarse superclasses
    shuffle: bool = False
    # MindFormers' single prompt; used when zero_shot.templates is 'hypothesis_template'.
    hypothesis_template: str = "a picture of {}"


@section
class ClassificationDatasetSection(DatasetSection):
    """``eval_dataset``: MindFormers' keys (see DatasetSection). ``transforms`` None means PIL bicubic resize
    of the short side + center crop to the model's image size (OpenAI), then /255 and CLIP's normalization."""
    data_loader: ClassificationLoaderSection = field(default_factory=ClassificationLoaderSection)


@section
class ClassificationDatasetTaskSection(Section):
    type: str = "ZeroShotImageClassificationDataset"
    # MindFormers repeats the dataset here via a YAML anchor; eval_dataset is what is used.
    dataset_config: Optional[ClassificationDatasetSection] = None


@section
class AccuracyMetricSection(Section):
    type: str = "Accuracy"


@section
class ZeroShotSection(Section):
    """Ours."""
    # openai (OpenAI's 18 CIFAR templates, ensembled) | hypothesis_template (MindFormers' single
    # data_loader.hypothesis_template) | one template string with {} | a list of templates.
    # None means openai.
    templates: Union[str, List[str], None] = None
    # Class names used in the prompts; None: the dataset's (underscores -> spaces).
    classnames: Optional[List[str]] = None
    # Softmax temperature for predict scores; None: the model's exp(logit_scale). See
    # ms_clip.eval.zero_shot.DEFAULT_LOGIT_SCALE. Accuracy does not depend on it.
    logit_scale: Optional[float] = DEFAULT_LOGIT_SCALE
    cache_class_embeddings: bool = True
    cache_dir: Optional[str] = None  # None: $MS_CLIP_HOME/zero_shot_classifiers
    text_batch_size: int = 256  # prompts per text-tower call
    topk_accuracy: List[int] = field(default_factory=lambda: [1, 5])  # accuracies evaluate reports
    metrics_file: str = "zero_shot_metrics.json"  # overall + per-class, under output_dir
    per_class_file: str = "zero_shot_per_class_accuracy.csv"
    predict_batch_size: int = 8  # images per forward pass in predict (--predict_batch_size)


@section
class ZeroShotRunConfig(RunConfig):
    """The run config of ``zero_shot_image_classification`` (the sections of ``RunConfig`` plus these)."""
    eval_dataset: ClassificationDatasetSection = field(default_factory=ClassificationDatasetSection)
    eval_dataset_task: ClassificationDatasetTaskSection = field(default_factory=ClassificationDatasetTaskSection)
    metric: AccuracyMetricSection = field(default_factory=AccuracyMetricSection)
    top_k: int = 3  # labels per image returned by predict
    save_file: str = "results.txt"  # predict's results (JSON lines), under output_dir unless absolute
    # Predict inputs when predict() gets none: a path, directory, URL or a list of them (--predict_data).
    input_data: Union[str, List[str], None] = None
    zero_shot: ZeroShotSection = field(default_factory=ZeroShotSection)

    def check(self) -> None:
        super().check()
        if self.eval_dataset_task.type != "ZeroShotImageClassificationDataset":
            raise RunConfigError(f"eval_dataset_task.type: expected 'ZeroShotImageClassificationDataset', got "
                                 f"{self.eval_dataset_task.type!r}")
        loader = self.eval_dataset.data_loader
        if loader.type not in LOADER_LAYOUTS:
            raise RunConfigError(f"eval_dataset.data_loader.type: expected one of {list(LOADER_LAYOUTS)}, got "
                                 f"{loader.type!r}")
        if loader.stage not in ("train", "test", "all"):
            raise RunConfigError(f"eval_dataset.data_loader.stage: expected train, test or all, got {loader.stage!r}")
        if self.eval_dataset.text_transforms.type != "TokenizerForward":
            raise RunConfigError(f"eval_dataset.text_transforms.type: expected 'TokenizerForward' (one prompt per "
                                 f"class and template), got {self.eval_dataset.text_transforms.type!r}")
        if self.metric.type != "Accuracy":
            raise RunConfigError(f"metric.type: expected 'Accuracy', got {self.metric.type!r}")
        zs = self.zero_shot
        try:
            resolve_eval_templates(self)
        except ValueError as err:
            raise RunConfigError(f"zero_shot.templates: {err}") from None
        if not zs.topk_accuracy or any(k < 1 for k in zs.topk_accuracy):
            raise RunConfigError(f"zero_shot.topk_accuracy: expected a list of positive integers, got "
                                 f"{zs.topk_accuracy!r}")
        for key in ("text_batch_size", "predict_batch_size"):
            if zs[key] < 1:
                raise RunConfigError(f"zero_shot.{key}: expected a positive integer, got {zs[key]!r}")
        if self.top_k < 1:
            raise RunConfigError(f"top_k: expected a positive integer, got {self.top_k!r}")


RUN_CONFIG_CLASS = ZeroShotRunConfig


# ----------------------------------------------------------------------------- helpers


def resolve_eval_templates(config: Dict[str, Any], model: Any = None) -> tuple:
    """The templates a run config asks for (see ``zero_shot.templates``); unset, the model's family's:
    OpenAI's 18 CIFAR prompts for CLIP, Chinese-CLIP's Chinese prompts for Chinese-CLIP."""
    spec = config["zero_shot"]["templates"]
    if spec is None:
        spec = "chinese_clip" if model is not None and is_chinese_clip(model) else "openai"
    if spec == HYPOTHESIS_TEMPLATE_KEYWORD:
        spec = config["eval_dataset"]["data_loader"]["hypothesis_template"]
        return resolve_templates(spec, "eval_dataset.data_loader.hypothesis_template")
    return resolve_templates(spec, "zero_shot.templates")


def _tokenizer(config: Dict[str, Any], model: Any = None):
    from ms_clip.tokenizer import CLIPTokenizer

    if model is not None and (is_chinese_clip(model) or is_dual_encoder(model)):
        # The model's own tokenizer (Chinese-CLIP's WordPiece and text normalisation; a dual encoder's text-tower
        # tokenizer from its folder); the CLIPTokenizer section does not apply.
        return tokenizer_for_model(model)
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
    # Bytes, so the file holds exactly ``text`` (no newline translation) and appears only when complete.
    with atomic_write(path, "wb") as f:
        f.write(text.encode("utf-8"))


def _layout(config: Dict[str, Any]) -> str:
    return LOADER_LAYOUTS[config["eval_dataset"]["data_loader"]["type"]]


def _classnames(config: Dict[str, Any], dataset_classnames: Sequence[str], model: Any = None) -> List[str]:
    override = config["zero_shot"]["classnames"]
    if override is None:
        if model is not None and is_chinese_clip(model):
            # Chinese prompts need Chinese names: the dataset's label_cn.txt (Chinese-CLIP's ELEVATER
            # layout), else ms_clip's CIFAR-10/100 translations; other datasets keep their own names.
            from ms_clip.data.chinese_classnames import chinese_classnames

            chinese = chinese_classnames(dataset_classnames, config["eval_dataset"]["data_loader"]["dataset_dir"])
            if chinese is not None:
                return chinese
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
    import dataclasses

    from ms_clip.data.pipeline import image_transform_from_config
    from ms_clip.processor import CLIPImageProcessor

    image_size = model.config.vision_config.image_size
    transforms = config["eval_dataset"]["transforms"]
    if not transforms and getattr(model.config, "preprocessing", None):
        from ms_clip.processor import image_processor_for

        return image_processor_for(model.config)  # the pretrained tag's mean/std and resize mode
    spec = image_transform_from_config(transforms, image_size, "eval_dataset.transforms")
    if not transforms and is_chinese_clip(model):
        spec = dataclasses.replace(spec, resize="squash")  # the model's own: resize to size x size, no crop
    if spec.random_crop:
        raise ValueError("eval_dataset.transforms: RandomResizedCrop is a training augmentation; evaluation "
                         "uses Resize + CenterCrop")
    if spec.size != image_size:
        raise ValueError(f"eval_dataset.transforms crop images to {spec.size} but the model expects "
                         f"{image_size}x{image_size} (vision_config.image_size)")
    # resize "squash" is Chinese-CLIP's Resize((R, R)) without a crop, "crop" OpenAI's.
    return CLIPImageProcessor(image_resolution=spec.size, mean=spec.mean, std=spec.std, resize_mode=spec.resize)


def _cache_setting(config: Dict[str, Any]) -> Union[bool, str]:
    zs = config["zero_shot"]
    return (zs["cache_dir"] or True) if zs["cache_class_embeddings"] else False


def _classifier(model, config: Dict[str, Any], classnames: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    return build_zero_shot_classifier(model, classnames, templates, tokenizer=_tokenizer(config, model),
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
    classnames = _classnames(config, data.classnames, model)
    templates = resolve_eval_templates(config, model)
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
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(per_class[0]))
    writer.writeheader()
    writer.writerows(per_class)
    _write_text(csv_path, table.getvalue())
    logger.info("zero-shot metrics written to %s and %s", metrics_path, csv_path)
    return result


# ----------------------------------------------------------------------------- predict


def _default_labels(config: Dict[str, Any], model: Any = None) -> List[str]:
    if config["zero_shot"]["classnames"] is not None:
        return check_labels(config["zero_shot"]["classnames"], "zero_shot.classnames")
    loader = config["eval_dataset"]["data_loader"]
    try:
        return _classnames(config, read_classnames(loader["dataset_dir"], _layout(config), loader["fine_label"]),
                           model)
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
    labels = check_labels(candidate_labels) if candidate_labels is not None else _default_labels(config, model)
    templates = hypothesis_template if hypothesis_template is not None else resolve_eval_templates(config, model)
    top_k = top_k if top_k is not None else (config.get("top_k") or 1)
    zs = config["zero_shot"]
    pipe = ZeroShotImageClassificationPipeline(model, candidate_labels=labels, hypothesis_template=templates,
                                               tokenizer=_tokenizer(config, model), image_processor=_image_processor(model, config),
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
