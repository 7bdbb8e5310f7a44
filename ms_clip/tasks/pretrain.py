"""The ``contrastive_language_image_pretrain`` task: train (or fine-tune) CLIP on image-caption data
and evaluate image<->text retrieval.

``PretrainRunConfig`` (``RUN_CONFIG_CLASS``) holds this task's run-YAML sections (MindFormers' names,
plus ours marked "Ours"); ``train`` and ``evaluate`` are what ``Trainer`` and ``run_mindformer.py`` call.
"""
from __future__ import annotations

import logging
import os
import string
from dataclasses import field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ms_clip.run_config import (CheckpointMonitorCallback, DatasetSection, RunConfig, RunConfigError, Section,
                                TextTransformsSection, optional_section, section)


logger = logging.getLogger(__name__)

__all__ = ["RUN_CONFIG_CLASS", "PretrainRunConfig", "CaptionDatasetSection", "train", "evaluate", "retrieval_eval",
           "checkpoint_options"]

# --------------------------------------------------------------------------- run-config sections


@section
class CaptionLoaderSection(Section):
    # Flickr8kDataLoader: <dataset_dir>/Flickr8k_Dataset/Flickr8k_Dataset/*.jpg + Flickr8k_text/.
    # JsonCaptionDataLoader (ours): <dataset_dir>/{en_train,en_val}.json lists of {"image", "caption": [...]}.
    # CsvCaptionDataLoader (ours): a .csv/.tsv/.jsonl file with one image path and caption(s) per row.
    # CocoCaptionDataLoader (ours): COCO's <dataset_dir>/annotations/captions_{train,val}2017.json + {train,val}2017/.
    # ChineseCLIPDataLoader (ours): Chinese-CLIP's <dataset_dir>/{stage}_imgs.tsv + {stage}_texts.jsonl, or
    # its LMDB folders (<dataset_dir>/lmdb/{stage}/{imgs,pairs}); see ms_clip.data.chinese_clip.
    type: str = "Flickr8kDataLoader"
    dataset_dir: str = "./checkpoint_download/Flickr8k"
    stage: str = "train"  # Flickr8k: train | dev | test | all; JSON: train | val (dev/test read en_val.json);
    #                       Chinese-CLIP: train | valid | test
    # Ours, ChineseCLIPDataLoader: auto (tsv if {stage}_imgs.tsv and {stage}_texts.jsonl exist, else lmdb) | tsv | lmdb.
    format: str = "auto"
    column_names: List[str] = field(default_factory=lambda: ["image", "text"])
    shuffle: Optional[bool] = None  # Ours. None: shuffle for training, not for evaluation
    # Ours, JSON/CSV layouts: an explicit annotation file (default: picked from stage; for CSV, '{stage}'
    # in it is replaced by the stage), where images live (default: dataset_dir, or the annotation file's
    # folder), and the CSV/JSONL columns and separator.
    annotation_file: Optional[str] = None
    image_dir: Optional[str] = None
    image_column: str = "image"
    caption_column: str = "caption"
    separator: Optional[str] = None  # None: from the extension (.csv ',', .tsv '\t')
    # Ours: a corrupt or missing image is skipped and counted in the log ("skip") or stops the run
    # naming the file ("fail").
    on_bad_image: str = "skip"
    # Ours, CocoCaptionDataLoader: COCO's release year (annotations/captions_{stage}<year>.json, {stage}<year>/).
    year: int = 2017
    # Ours: every (image, caption) pair is a sample (an epoch sees each caption once, as HF's contrastive-image-
    # text example on COCO); False: one sample per image with a random caption per epoch. Training only.
    per_caption: bool = False


@section
class CaptionTextTransformsSection(TextTransformsSection):
    # RandomChoiceTokenizerForward: a fresh random caption per image and epoch (seeded by seed, epoch and
    # index; MindFormers re-seeded on every call and always used the 5th caption). TokenizerForward: the first.
    type: str = "RandomChoiceTokenizerForward"
    random_seed: int = 2022  # accepted for MindFormers YAMLs; the caption choice is seeded by `seed`


@section
class CaptionDatasetSection(DatasetSection):
    """One dataset section (train_dataset / eval_dataset), MindFormers' keys plus ours (see DatasetSection)."""
    data_loader: CaptionLoaderSection = field(default_factory=CaptionLoaderSection)
    text_transforms: CaptionTextTransformsSection = field(default_factory=CaptionTextTransformsSection)
    drop_remainder: bool = True

    @classmethod
    def for_split(cls, split: str) -> "CaptionDatasetSection":
        """The defaults of ``train_dataset`` (shuffled random captions, full batches) or ``eval_dataset``."""
        out = cls()
        if split != "train":
            out.data_loader.stage = "test"
            out.text_transforms.type = "TokenizerForward"
            out.drop_remainder = False
        return out


@section
class CaptionDatasetTaskSection(Section):
    type: str = "ContrastiveLanguageImagePretrainDataset"
    # MindFormers' YAMLs repeat the dataset here through a YAML anchor (dataset_config: *train_dataset);
    # <split>_dataset is what is used, dataset_config is checked against the same keys (and defaults).
    dataset_config: Optional[CaptionDatasetSection] = optional_section(lambda: CaptionDatasetSection.for_split("train"))


@section
class EvalCaptionDatasetTaskSection(CaptionDatasetTaskSection):
    dataset_config: Optional[CaptionDatasetSection] = optional_section(lambda: CaptionDatasetSection.for_split("eval"))


@section
class RetrievalMetricSection(Section):
    # Ours: image<->text retrieval as CLIP_benchmark defines it (all captions per image).
    type: str = "ImageTextRetrieval"
    recall_k: List[int] = field(default_factory=lambda: [1, 5, 10])


CAPTION_LOADERS = ("Flickr8kDataLoader", "JsonCaptionDataLoader", "CsvCaptionDataLoader", "ChineseCLIPDataLoader",
                   "CocoCaptionDataLoader")
CHINESE_CLIP_STAGES = ("train", "valid", "test", "val", "dev")


@section
class PretrainRunConfig(RunConfig):
    """The run config of ``contrastive_language_image_pretrain`` (the sections of ``RunConfig`` plus these)."""
    train_dataset: CaptionDatasetSection = field(default_factory=lambda: CaptionDatasetSection.for_split("train"))
    train_dataset_task: CaptionDatasetTaskSection = field(default_factory=CaptionDatasetTaskSection)
    eval_dataset: CaptionDatasetSection = field(default_factory=lambda: CaptionDatasetSection.for_split("eval"))
    eval_dataset_task: EvalCaptionDatasetTaskSection = field(default_factory=EvalCaptionDatasetTaskSection)
    metric: RetrievalMetricSection = field(default_factory=RetrievalMetricSection)
    # Ours: where evaluate() writes its results (under output_dir unless absolute).
    save_file: str = "retrieval_results.json"

    def check(self) -> None:
        super().check()
        for split in ("train", "eval"):
            name = f"{split}_dataset"
            dataset: CaptionDatasetSection = self[name]
            task = self[f"{name}_task"]
            if task.type != "ContrastiveLanguageImagePretrainDataset":
                raise RunConfigError(f"{name}_task.type: expected 'ContrastiveLanguageImagePretrainDataset', got "
                                     f"{task.type!r}")
            loader = dataset.data_loader
            if loader.type not in CAPTION_LOADERS:
                raise RunConfigError(f"{name}.data_loader.type: expected one of {list(CAPTION_LOADERS)}, got "
                                     f"{loader.type!r}")
            if loader.on_bad_image not in ("skip", "fail"):
                raise RunConfigError(f"{name}.data_loader.on_bad_image: expected 'skip' or 'fail', got "
                                     f"{loader.on_bad_image!r}")
            if dataset.text_transforms.type not in ("RandomChoiceTokenizerForward", "TokenizerForward"):
                raise RunConfigError(f"{name}.text_transforms.type: expected RandomChoiceTokenizerForward or "
                                     f"TokenizerForward, got {dataset.text_transforms.type!r}")
            if loader.type == "CsvCaptionDataLoader":
                key = "annotation_file" if loader.annotation_file else "dataset_dir"
                _check_stage_template(f"{name}.data_loader.{key}", loader[key])
            if loader.format not in ("auto", "tsv", "lmdb"):
                raise RunConfigError(f"{name}.data_loader.format: expected auto, tsv or lmdb, got {loader.format!r}")
            if loader.type == "CocoCaptionDataLoader" and loader.stage not in _coco_stages():
                hint = " (COCO's test split has no public captions)" if loader.stage == "test" else ""
                raise RunConfigError(f"{name}.data_loader.stage: COCO's caption splits are train and val, got "
                                     f"{loader.stage!r}{hint}")
            if loader.type == "CocoCaptionDataLoader" and not 1000 <= loader.year <= 9999:
                raise RunConfigError(f"{name}.data_loader.year: expected a four-digit COCO year such as 2017, got "
                                     f"{loader.year!r}")
            if loader.per_caption and (split == "eval" or loader.type == "ChineseCLIPDataLoader"):
                raise RunConfigError(f"{name}.data_loader.per_caption: only for train_dataset with image-file "
                                     f"loaders (retrieval groups the captions of each image)")
            if loader.type == "ChineseCLIPDataLoader" and loader.stage not in CHINESE_CLIP_STAGES:
                raise RunConfigError(f"{name}.data_loader.stage: Chinese-CLIP's splits are train, valid and test, got "
                                     f"{loader.stage!r}")
        if self.metric.type != "ImageTextRetrieval":
            raise RunConfigError(f"metric.type: expected 'ImageTextRetrieval', got {self.metric.type!r}")
        if not self.metric.recall_k or any(k < 1 for k in self.metric.recall_k):
            raise RunConfigError(f"metric.recall_k: expected a list of positive integers, got {self.metric.recall_k!r}")
        # MindFormers trains with runner_config.batch_size and overwrites train_dataset.batch_size with it.
        if self.train_dataset.batch_size != self.runner_config.batch_size:
            if self.is_set("train_dataset.batch_size"):
                logger.warning("train_dataset.batch_size (%d) differs from runner_config.batch_size (%d); training "
                               "uses runner_config.batch_size, as MindFormers does", self.train_dataset.batch_size,
                               self.runner_config.batch_size)
            self.train_dataset.batch_size = self.runner_config.batch_size


def _coco_stages() -> Tuple[str, ...]:
    from ms_clip.data.captions import COCO_STAGES

    return tuple(COCO_STAGES)


def _check_stage_template(path: str, template: str) -> None:
    """A CSV annotation path may hold '{stage}' (replaced by data_loader.stage) and nothing else in braces."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise RunConfigError(f"{path}: {template!r} is not a valid path template ({err}); only '{{stage}}' is "
                             f"replaced (write '{{{{' and '}}}}' for literal braces)") from None
    unknown = [name for name in fields if name != "stage"]
    if unknown:
        raise RunConfigError(f"{path}: {template!r} has the placeholder '{{{unknown[0]}}}'; only '{{stage}}' is "
                             f"replaced (by data_loader.stage); write '{{{{' and '}}}}' for literal braces")


RUN_CONFIG_CLASS = PretrainRunConfig


# --------------------------------------------------------------------------- helpers


def _output_path(config: Dict[str, Any], *parts: str) -> str:
    return os.path.join(config["output_dir"], *parts)


def checkpoint_options(config: PretrainRunConfig) -> Dict[str, Any]:
    """prefix / save_checkpoint_steps / keep_checkpoint_max / directory from the CheckpointMonitor entry of
    ``callbacks`` (its defaults when there is none; the directory defaults to output_dir/checkpoint)."""
    entry = CheckpointMonitorCallback()
    for item in config.callbacks or []:
        if isinstance(item, CheckpointMonitorCallback):
            entry = item
    return {"prefix": entry.prefix, "save_checkpoint_steps": entry.save_checkpoint_steps,
            "keep_checkpoint_max": entry.keep_checkpoint_max,
            "directory": entry.directory or _output_path(config, "checkpoint")}


def _image_transform(section: Dict[str, Any], model, where: str):
    import dataclasses

    from ms_clip.data.captions import DataError
    from ms_clip.data.pipeline import image_transform_from_config
    from ms_clip.features import is_chinese_clip

    size = model.config.vision_config.image_size
    transform = image_transform_from_config(section.get("transforms"), size, f"{where}.transforms")
    if not section.get("transforms") and is_chinese_clip(model):
        # No transforms listed: the model's own preprocessing, which for Chinese-CLIP is a bicubic
        # resize to size x size without crop (cn_clip's Resize((R, R))).
        transform = dataclasses.replace(transform, resize="squash")
    if _is_dual_encoder(model) and not transform.random_crop and transform.resize == "crop":
        # HF run_clip.py's Transform (torchvision's antialiased tensor resize + center crop), as the dual
        # encoder's processor preprocesses (ms_clip.processor.image_processor_for).
        transform = dataclasses.replace(transform, backend="torchvision")
    if transform.size != size:
        raise DataError(f"{where}.transforms resize images to {transform.size} px but the model takes "
                        f"{size} px (model.model_config.vision_config.image_size); make them equal")
    return transform


def _records(section: Dict[str, Any], records, where: str):
    from ms_clip.data.captions import CaptionRecords, load_caption_records

    if records is not None:
        if not isinstance(records, CaptionRecords):
            raise TypeError(f"{where}: expected a dataset path or ms_clip.data.captions.CaptionRecords, got "
                            f"{type(records).__name__}")
        return records
    if section["data_loader"]["type"] == "ChineseCLIPDataLoader":
        from ms_clip.data.chinese_clip import load_chinese_clip_records

        # Training visits every (text, image) pair; evaluation scores every text against every image.
        return load_chinese_clip_records(section["data_loader"], "train" if where == "train_dataset" else "eval")
    return load_caption_records(section["data_loader"])


# --------------------------------------------------------------------------- evaluation


def retrieval_eval(model, records, transform, batch_size: int = 64, num_parallel_workers: int = 2,
                   on_bad_image: str = "skip", context_length: int = 77, ks: Sequence[int] = (1, 5, 10),
                   distributed: Optional[Tuple[int, int]] = None, tokenizer=None) -> Dict[str, float]:
    """Retrieval recall of ``model`` on ``records`` (bad images and their captions dropped): CLIP_benchmark's
    definitions for caption records, Chinese-CLIP's (several correct images per text,
    ``multi_positive_metrics``) for records that carry ``texts``/``text_images`` (``ChineseCLIPDataLoader``).

    Features come from ``ms_clip.features`` (the model's compiled encoders); ``tokenizer``: texts ->
    token ids [N, L], default the model's own (``tokenizer_for_model``: CLIP's BPE at ``context_length``,
    Chinese-CLIP's WordPiece).
    ``distributed`` = (rank, world_size): each rank encodes a contiguous slice of the images and of the
    captions, the features are all-gathered in order, and every rank computes the same metrics.
    """
    from ms_clip.data.pipeline import build_image_dataset
    from ms_clip.distributed import gather_rows
    from ms_clip.eval.retrieval import multi_positive_metrics, retrieval_metrics
    from ms_clip.features import encode_images, encode_texts, tokenizer_for_model

    rank, world_size = distributed or (0, 1)
    width = model.config.projection_dim
    mine = np.array_split(np.arange(len(records)), world_size)[rank]
    image_features, ok = np.zeros((0, width), np.float32), np.zeros(0, bool)
    if len(mine):
        dataset, _ = build_image_dataset(records, batch_size, transform, num_parallel_workers=num_parallel_workers,
                                         on_bad_image=on_bad_image, indices=mine)
        oks = []

        def pixel_batches():
            for pixels, readable in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
                oks.append(readable)
                yield pixels

        # Unpadded: the last batch's features stay bit-identical to what earlier releases reported.
        image_features = encode_images(model, pixel_batches(), batch_size, pad_last_batch=False)
        ok = np.concatenate(oks).astype(bool)
    image_features = gather_rows(image_features.astype(np.float32), world_size)
    ok = gather_rows(ok, world_size)
    texts, positives = _retrieval_texts(records)
    if not ok.all():
        logger.warning("retrieval: %d of %d images could not be read and are left out (with the texts that have no "
                       "other correct image)", int((~ok).sum()), len(ok))
    remap = np.cumsum(ok) - 1
    kept, kept_positives = [], []
    for text, images in zip(texts, positives):
        readable = [int(remap[i]) for i in images if ok[i]]
        if readable:
            kept.append(text)
            kept_positives.append(readable)
    my_texts = [kept[i] for i in np.array_split(np.arange(len(kept)), world_size)[rank]]
    text_features = np.zeros((0, width), np.float32)
    if my_texts:
        text_features = encode_texts(model, my_texts, tokenizer or tokenizer_for_model(model, context_length),
                                     batch_size=max(batch_size, 64))
    text_features = gather_rows(text_features.astype(np.float32), world_size)
    if getattr(records, "text_images", None) is not None:
        # Chinese-CLIP's data: a text may have several correct images; its evaluation's definitions.
        return multi_positive_metrics(image_features[ok], text_features, kept_positives, ks)
    return retrieval_metrics(image_features[ok], text_features, [p[0] for p in kept_positives], ks)


def _retrieval_texts(records) -> Tuple[List[str], List[List[int]]]:
    """Every text to retrieve with and the record indices of its correct images: the records' own
    ``texts``/``text_images`` when they carry them (Chinese-CLIP), else each caption with its image."""
    from ms_clip.data.captions import flatten_captions

    if getattr(records, "text_images", None) is not None:
        return list(records.texts), [list(images) for images in records.text_images]
    texts, owners = flatten_captions(records)
    return list(texts), [[int(owner)] for owner in owners]


def _eval_setup(model, config: PretrainRunConfig, records=None, distributed: Optional[Tuple[int, int]] = None):
    import functools

    from ms_clip.data.pipeline import caption_tokenizer

    section = config.eval_dataset
    records = _records(section, records, "eval_dataset")
    transform = _image_transform(section, model, "eval_dataset")
    context_length = section.text_transforms.max_length
    tokenizer = caption_tokenizer(section.tokenizer)  # None unless tokenizer.vocab_file names another vocabulary
    options = {"batch_size": section.batch_size,
               "num_parallel_workers": min(section.num_parallel_workers, os.cpu_count() or 1),
               "on_bad_image": section.data_loader.on_bad_image,
               "context_length": context_length,
               "ks": tuple(config.metric.recall_k),
               "distributed": distributed,
               "tokenizer": tokenizer and functools.partial(tokenizer, context_length=context_length)}
    return lambda: retrieval_eval(model, records, transform, **options), records


def evaluate(model, config: Dict[str, Any], eval_records=None,
             distributed: Optional[Tuple[int, int]] = None) -> Dict[str, float]:
    """Image<->text retrieval on ``eval_dataset`` (CLIP_benchmark definition); logged, saved to
    ``output_dir/save_file`` as JSON (by rank 0), and returned (on every rank).

    ``distributed`` = (rank, world_size): the features are computed sharded over the ranks."""
    from ms_clip.data.pipeline import apply_dataset_settings
    from ms_clip.eval.retrieval import chance_recall, format_metrics

    # MindSpore's dataset settings are process-wide; during training the train_dataset's apply.
    apply_dataset_settings(config.eval_dataset.prefetch_size, config.eval_dataset.numa_enable)
    run, records = _eval_setup(model, config, eval_records, distributed)
    metrics = run()
    ks = (config.get("metric") or {}).get("recall_k") or (1, 5, 10)
    if getattr(records, "text_images", None) is not None:
        from ms_clip.eval.retrieval import multi_positive_chance

        metrics["chance_mean_recall"] = multi_positive_chance(len(records), records.text_images, ks)["mean_recall"]
    else:
        per_image = records.num_captions / max(1, len(records))
        metrics["chance_mean_recall"] = chance_recall(metrics["num_images"], max(1, round(per_image)),
                                                      ks)["mean_recall"]
    logger.info("retrieval on %s: %s", records.source, format_metrics(metrics))
    for key, value in metrics.items():
        logger.info("%s = %s", key, value)
    if (distributed or (0, 1))[0] != 0:
        return metrics
    path = config.get("save_file") or "retrieval_results.json"
    path = path if os.path.isabs(path) else _output_path(config, path)
    from ms_clip.fileio import write_json

    write_json(path, metrics, indent=1)
    logger.info("wrote %s", path)
    return metrics


# --------------------------------------------------------------------------- training


def _loss_scaler(config: Dict[str, Any], model):
    from ms_clip.train.loop import LossScaler

    scale_sense = config["runner_wrapper"]["scale_sense"] or {}
    kind = scale_sense.get("type", "none")
    if model.config.compute_dtype != "float16" or kind == "none":
        return LossScaler()
    return LossScaler("dynamic" if kind == "DynamicLossScaleUpdateCell" else "fixed",
                      float(scale_sense.get("loss_scale_value", 65536.0)), float(scale_sense.get("scale_factor", 2.0)),
                      int(scale_sense.get("scale_window", 1000)))


def _is_dual_encoder(model) -> bool:
    from ms_clip.models.dual_encoder import VisionTextDualEncoderConfig

    return isinstance(getattr(model, "config", None), VisionTextDualEncoderConfig)


def _check_precision(config: Dict[str, Any], model) -> None:
    import mindspore as ms

    device = ms.get_context("device_target")
    if model.config.compute_dtype == "bfloat16" and device == "CPU":
        from ms_clip.run_config import RunConfigError

        raise RunConfigError("model.model_config.dtype: bfloat16 matrix multiplication is not supported on CPU in "
                             "MindSpore; use float32 or float16 here (bfloat16 works on Ascend)")


def _check_same_weights(fingerprints: Sequence[float], when: str) -> None:
    if any(f != fingerprints[0] for f in fingerprints):
        raise RuntimeError(f"data-parallel ranks hold different weights {when} (weight fingerprints per rank: "
                           f"{fingerprints}); expected identical values on every rank")


def train(model, config: Dict[str, Any], train_records=None, eval_records=None, callbacks: Sequence[Any] = (),
          resume_training: Any = None, do_eval: Optional[bool] = None, distributed=None) -> Dict[str, Any]:
    """Train ``model`` as ``config`` says; returns a summary (steps, loss, samples/s, checkpoint, eval metrics).

    ``resume_training`` (else ``config['resume_training']``): True for the newest checkpoint under
    ``output_dir/checkpoint``, or a training checkpoint path (new checkpoints still go to this run's
    ``output_dir``). ``distributed``: (rank, world_size) when running data-parallel (rank 0 writes files
    and holds the output directory's lock, see ``ms_clip.train.run_lock``).

    Raises ``TrainingInterrupted`` (with the checkpoint's path) when SIGTERM/SIGINT stopped the run.
    """
    import contextlib

    from ms_clip.train.run_lock import lock_output_dir

    rank, _ = distributed or (0, 1)
    # Only rank 0 writes outputs, so only rank 0 locks; the lock comes before any file is written.
    with lock_output_dir(config["output_dir"]) if rank == 0 else contextlib.nullcontext():
        return _train(model, config, train_records, eval_records, callbacks, resume_training, do_eval, distributed)


def _train(model, config: Dict[str, Any], train_records, eval_records, callbacks: Sequence[Any],
           resume_training: Any, do_eval: Optional[bool], distributed) -> Dict[str, Any]:

    from ms_clip.data.pipeline import dataset_options
    from ms_clip.eval.retrieval import format_metrics
    from ms_clip.features import caption_tokenizer_for_model, is_chinese_clip
    from ms_clip.train.callbacks import MetricsLogger, ProgressBar, attach_log_file
    from ms_clip.train.checkpoint import CheckpointManager, remove_temp_files, resolve_resume
    from ms_clip.train.loop import (FitOptions, NonFiniteLossError, StepRunner, TrainingInterrupted, TrainState, fit,
                                    past_epoch_end, steps_in_epoch)
    from ms_clip.train.plots import plot_training_curves
    from ms_clip.train.schedule import schedule_from_config

    from ms_clip.distributed import rank_fingerprints

    rank, world_size = distributed or (0, 1)
    is_main = rank == 0
    # Rank 0 logs the run; the other ranks' files keep only their warnings and errors.
    handler = attach_log_file(_output_path(config, "log", f"train_rank{rank}.log"),
                              logging.INFO if is_main else logging.WARNING)
    try:
        _check_precision(config, model)
        runner_config = config["runner_config"]
        section = config["train_dataset"]
        records = _records(section, train_records, "train_dataset")
        transform = _image_transform(section, model, "train_dataset")
        pipeline = dataset_options(section)
        if (is_chinese_clip(model) or _is_dual_encoder(model)) and pipeline["tokenizer"] is None:
            # The model's own tokenizer, not CLIP's BPE: Chinese-CLIP's WordPiece and text normalisation, or
            # the dual encoder's text-tower tokenizer (RoBERTa BPE / BERT WordPiece from its folder).
            pipeline["tokenizer"] = caption_tokenizer_for_model(model, pipeline["context_length"])
        pipeline["num_parallel_workers"] = min(pipeline["num_parallel_workers"], os.cpu_count() or 1)
        shuffle = section["data_loader"]["shuffle"]
        pipeline["shuffle"] = True if shuffle is None else bool(shuffle)
        do_eval = config["do_eval"] if do_eval is None else do_eval
        ckpt = checkpoint_options(config)
        options = FitOptions(
            epochs=runner_config["epochs"], batch_size=runner_config["batch_size"],
            accumulation=runner_config["gradient_accumulation_steps"], max_steps=runner_config["max_steps"],
            seed=int(section["seed"] if section["seed"] is not None else config["seed"]),
            num_shards=world_size, shard_id=rank, is_main=is_main,
            save_every_steps=int(ckpt["save_checkpoint_steps"] or 0),
            eval_every_epochs=int(config["eval_epoch_interval"]) if do_eval else 0,
            eval_every_steps=int(config["eval_step_interval"]) if do_eval else -1,
            pipeline=pipeline,
            samples_path=_output_path(config, "log", f"samples_rank{rank}.jsonl") if runner_config["record_samples"]
            else None)
        per_epoch = steps_in_epoch(len(records), options)
        total = per_epoch * options.epochs
        schedule = schedule_from_config(config["lr_schedule"], config["optimizer"], total)
        wrapper = config["runner_wrapper"]
        runner = StepRunner(model, config["optimizer"], schedule, accumulation=options.accumulation,
                            clip_norm=float(wrapper["max_grad_norm"]) if wrapper["use_clip_grad"] else None,
                            scaler=_loss_scaler(config, model), lock_image=runner_config["lock_image"],
                            lock_text=runner_config["lock_text"], world_size=world_size, rank=rank)
        manager = CheckpointManager(ckpt["directory"], ckpt["prefix"], int(ckpt["keep_checkpoint_max"]))
        if is_main:  # leftovers of a run killed inside a save (we hold the lock: no live writer's files)
            remove_temp_files(manager.directory)
            remove_temp_files(config["output_dir"], subdirs=(), suffixes=(".json", ".jsonl"))  # metrics, summary
            if _is_dual_encoder(model) and getattr(model, "tokenizer_dir", None):
                # The text tokenizer's files beside the checkpoints: a .ckpt loaded from there (eval, finetune,
                # export) finds its tokenizer as a save_pretrained folder's does.
                from ms_clip.loader import copy_tokenizer_files

                os.makedirs(manager.directory, exist_ok=True)
                copy_tokenizer_files(model.tokenizer_dir, manager.directory)
        run_info = {"batch_size": options.batch_size, "num_shards": world_size, "seed": options.seed,
                    "num_samples": len(records), "accumulation": options.accumulation}
        state = TrainState(loss_scale=runner.scaler.scale)
        resume = resolve_resume(config["resume_training"] if resume_training is None else resume_training,
                                ckpt["directory"])
        if resume is not None:
            record = manager.load(resume or None)
            changed = {k: (record["run"].get(k), v) for k, v in run_info.items() if record["run"].get(k) != v}
            if changed:
                from ms_clip.run_config import RunConfigError

                raise RunConfigError(f"cannot resume from {record['weights_path']}: the data position depends on "
                                     f"settings that changed since (was, now): {changed}")
            manager.restore(record, model, runner.optimizer)
            state = past_epoch_end(TrainState(**record["state"]), per_epoch, options.accumulation)
            runner.scaler.scale, runner.scaler.good_steps = state.loss_scale, state.good_steps
            logger.info("resumed from %s: step %d, epoch %d, batch %d of the epoch", record["weights_path"],
                        state.step, state.epoch + 1, state.batch_in_epoch)
        n_params = sum(int(np.prod(p.shape)) for p in runner.params)
        logger.info("training on %s: %d images, %d captions; %d epochs x %d steps (batch %d x %d shard(s) x %d "
                    "accumulation = one contrastive batch of %d), %s lr %.3g, %d warmup steps; %d trainable "
                    "parameters; dtype %s",
                    records.source, len(records), records.num_captions, options.epochs, per_epoch, options.batch_size,
                    world_size, options.accumulation, options.batch_size * world_size * options.accumulation,
                    schedule.kind, schedule.base_lr, schedule.warmup_steps, n_params, model.config.compute_dtype)
        evaluate_fn = None
        if do_eval:
            evaluate_fn, _ = _eval_setup(model, config, eval_records, (rank, world_size))
        # Data parallelism is only exact if every rank starts from, and ends with, the same weights.
        fingerprints = {"initial": rank_fingerprints(runner.model.get_parameters(), world_size)}
        _check_same_weights(fingerprints["initial"], "at the start")
        cbs = list(callbacks)
        if is_main:
            cbs = [ProgressBar(), MetricsLogger(_output_path(config, "metrics.jsonl"), runner_config["log_interval"]),
                   *cbs]

        def save(current: TrainState) -> str:
            return manager.save(model, runner.optimizer.state_dict(), current.to_dict(), run_info)

        try:
            state, summary = fit(runner, records, transform, options, state, save, evaluate_fn, cbs)
        except NonFiniteLossError as err:
            latest = manager.latest()
            where = os.path.join(manager.directory, latest["weights"]) if latest else "none (no checkpoint yet)"
            raise NonFiniteLossError(f"{err}. Training stopped; the last good checkpoint is {where}. Lower "
                                     f"optimizer.learning_rate, enable runner_wrapper.use_clip_grad, or use float32.") \
                from None
        except TrainingInterrupted as err:
            latest = manager.latest() if is_main else None
            raise err.with_checkpoint(os.path.join(manager.directory, latest["weights"]) if latest else None)
        fingerprints["final"] = rank_fingerprints(runner.model.get_parameters(), world_size)
        _check_same_weights(fingerprints["final"], "after training")
        summary["weight_fingerprints"] = fingerprints
        latest = manager.latest()
        summary["checkpoint"] = os.path.join(manager.directory, latest["weights"]) if latest else None
        logger.info("training done: %d steps, last loss %.4f, %.1f samples/s; checkpoint %s", summary["step"],
                    summary["loss"] or float("nan"), summary["samples_per_second"] or 0.0, summary["checkpoint"])
        if is_main:
            from ms_clip.train.callbacks import read_metrics

            evals = [r for r in read_metrics(_output_path(config, "metrics.jsonl")) if r.get("type") == "eval"]
            if evals:
                summary["eval"] = {k: v for k, v in evals[-1].items() if k not in ("type", "time")}
                logger.info("last evaluation: %s", format_metrics(summary["eval"]))
            plot_training_curves(_output_path(config, "metrics.jsonl"), _output_path(config, "plots"))
            from ms_clip.fileio import write_json

            write_json(_output_path(config, "train_summary.json"), summary, indent=1)
        return summary
    finally:
        logging.getLogger("ms_clip").removeHandler(handler)
        handler.close()
