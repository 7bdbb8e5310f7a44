"""The typed run config: attribute and item access, what the user set, every silent-config case of issue 11
(now an error naming the key and both values, or a warning naming the key), value checks at load time
(issue 12, item 13), and that every key of the schema is read by code or listed as not implemented."""
from __future__ import annotations

import ast
import glob
import logging
import os
import re
from types import SimpleNamespace

import pytest
import yaml

from ms_clip.run_config import (NOT_IMPLEMENTED, RunConfigError, check_against_model, config_class, load_run_config,
                                schema_leaves)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = "contrastive_language_image_pretrain"
ZERO_SHOT = "zero_shot_image_classification"
TINY_YAML = os.path.join(ROOT, "configs", "clip", "run_clip_tiny_pretrain_flickr8k.yaml")


def _model(image_size: int = 224, context_length: int = 77) -> SimpleNamespace:
    """The two fields of a model config the run config is checked against."""
    return SimpleNamespace(vision_config=SimpleNamespace(image_size=image_size),
                           text_config=SimpleNamespace(max_position_embeddings=context_length))


def _tiny() -> dict:
    with open(TINY_YAML) as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------- access


def test_attribute_and_item_access_agree():
    config = load_run_config(TINY_YAML)
    assert config.runner_config.batch_size == config["runner_config"]["batch_size"] == 32
    assert config.get("runner_config").get("epochs") == 20 and config.get("no_such_key", 7) == 7
    assert "train_dataset" in config and "data_loader" in config.train_dataset and "nope" not in config
    assert config.callbacks[1]["keep_checkpoint_max"] == config.callbacks[1].keep_checkpoint_max == 3
    config["eval_dataset"]["batch_size"] = 5  # item assignment, as MindFormerConfig allows
    assert config.eval_dataset.batch_size == 5
    assert config.optimizer == config.optimizer.to_dict()  # a section equals a dict with its keys
    with pytest.raises(RunConfigError, match="unknown key 'batchsize'. Did you mean 'batch_size'"):
        config.runner_config.batchsize = 3  # a typo never becomes a new, unread key
    with pytest.raises(KeyError):
        config["runner_config"]["batchsize"]
    # Plain data round trip: what Trainer(save_config=True) writes loads back to the same config.
    again = load_run_config(yaml.safe_load(yaml.safe_dump(config.to_dict())))
    assert again.to_dict() == config.to_dict()


def test_the_config_remembers_what_the_user_set():
    config = load_run_config({"runner_config": {"epochs": 2}}, task=PRETRAIN,
                             overrides={"train_dataset.batch_size": 32})
    assert config.is_set("runner_config.epochs") and config.is_set("runner_config")
    assert config.is_set("train_dataset.batch_size")  # an override counts as set
    assert not config.is_set("runner_config.image_size") and not config.is_set("processor.max_length")
    assert "runner_config.epochs" in config.explicit_keys()


def test_kinds_are_checked_with_path_value_and_kind():
    with pytest.raises(RunConfigError, match=r"runner_config.batch_size: expected an integer, got 'abc'"):
        load_run_config({"runner_config": {"batch_size": "abc"}}, task=PRETRAIN)
    with pytest.raises(RunConfigError, match=r"metric.recall_k\[1\]: expected an integer, got 'x'"):
        load_run_config({"metric": {"recall_k": [1, "x"]}}, task=PRETRAIN)
    with pytest.raises(RunConfigError, match=r"zero_shot.classnames: expected a list of strings \(or null\), got 3"):
        load_run_config({"zero_shot": {"classnames": 3}}, task=ZERO_SHOT)
    config = load_run_config({"optimizer": {"learning_rate": "1e-4"}, "lr_schedule": {"learning_rate": "2e-4"}},
                             task=PRETRAIN)  # PyYAML reads 1e-4 (no dot) as a string
    assert config.optimizer.learning_rate == 1e-4 and config.lr_schedule.learning_rate == 2e-4


MINDFORMERS_ZERO_SHOT_YAML = """
seed: 0
run_mode: 'eval'
output_dir: './output'
load_checkpoint: ''
src_strategy_path_or_dir: ''
auto_trans_ckpt: False
only_save_strategy: False
resume_training: False
context: {mode: 0, device_target: "Ascend", enable_graph_kernel: False, graph_kernel_flags: "--opt_level=0",
          max_call_depth: 10000, save_graphs: False, device_id: 0}
remote_save_url: "Please input obs url on AICC platform."
runner_config: {epochs: 5, batch_size: 32, image_size: 224, sink_mode: False, sink_size: 2}
use_parallel: False
parallel: {parallel_mode: 0, gradients_mean: True, enable_alltoall: False, full_batch: False,
           search_mode: "sharding_propagation", enable_parallel_optimizer: False,
           strategy_ckpt_save_file: "./ckpt_strategy.ckpt"}
parallel_config: {data_parallel: 1, model_parallel: 1, expert_parallel: 1, pipeline_stage: 1, micro_batch_num: 1,
                  gradient_aggregation_group: 4}
micro_batch_interleave_num: 1
recompute_config: {recompute: False, parallel_optimizer_comm_recompute: False, mp_comm_recompute: True,
                   recompute_slice_activation: False}
auto_tune: False
filepath_prefix: './autotune'
autotune_per_step: 10
profile: False
profile_start_step: 1
profile_stop_step: 10
init_start_profile: False
profile_communication: False
profile_memory: True
trainer: {type: ZeroShotImageClassificationTrainer, model_name: 'clip_vit_b_32'}
eval_dataset: &eval_dataset
  data_loader: {type: Cifar100DataLoader, dataset_dir: 'cifar-100-python', column_names: ["image", "text", "label"],
                stage: 'test', fine_label: True, shuffle: False, hypothesis_template: "a picture of {}"}
  tokenizer: {type: CLIPTokenizer, pad_token: '!'}
  text_transforms: {type: TokenizerForward, max_length: 77, padding: "max_length"}
  transforms:
    - type: ToPIL
    - {type: Resize, size: 224, interpolation: 'linear'}
    - {type: CenterCrop, size: 224}
    - type: ToTensor
    - {type: Normalize, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711],
       is_hwc: False}
  num_parallel_workers: 8
  python_multiprocessing: False
  drop_remainder: False
  batch_size: 32
  repeat: 1
  numa_enable: False
  prefetch_size: 30
  seed: 2022
eval_dataset_task: {type: ZeroShotImageClassificationDataset, dataset_config: *eval_dataset}
metric: {type: 'Accuracy'}
model:
  arch: {type: CLIPModel}
  model_config: {type: CLIPConfig, dtype: float16, checkpoint_name_or_path: clip_vit_b_32, projection_dim: 512,
                 logit_scale_init_value: 2.6592}
layer_scale: False
layer_decay: 0.65
optimizer: {type: adamw, weight_decay: 0.001, learning_rate: 0.00001}
lr_scale: False
lr_scale_factor: 256
callbacks:
  - type: MFLossMonitor
  - {type: CheckpointMointor, prefix: "mindformers", save_checkpoint_steps: 100, integrated_save: True,
     async_save: False}
  - type: ObsMonitor
eval_callbacks:
  - type: ObsMonitor
processor:
  type: CLIPProcessor
  image_processor: {type: CLIPImageProcessor, image_resolution: 224}
  tokenizer: {type: CLIPTokenizer, pad_token: '!'}
top_k: 3
save_file: 'results.txt'
"""


def test_a_mindformers_run_yaml_loads(tmp_path, caplog):
    path = tmp_path / "run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml"
    path.write_text(MINDFORMERS_ZERO_SHOT_YAML)
    with caplog.at_level(logging.WARNING, logger="ms_clip"):
        config = load_run_config(str(path))
    assert config.callbacks[1].prefix == "mindformers" and config.context.device_target == "Ascend"
    # Its non-default, unimplemented settings are named: the AICC upload placeholder, the bilinear Resize
    # (ms_clip resizes bicubic) and the single hypothesis_template (zero_shot.templates, unset, means OpenAI's 18).
    assert "remote_save_url is set to" in caplog.text and caplog.text.count("does not implement it") == 3
    assert "transforms[1].interpolation is set to 'linear'" in caplog.text
    assert "eval_dataset.data_loader.hypothesis_template is set to" in caplog.text
    check_against_model(config, _model(224, 77))


# --------------------------------------------------------------------------- contradictions with the model


def test_runner_config_image_size_must_be_the_models():
    config = load_run_config({"runner_config": {"image_size": 999}}, task=PRETRAIN)
    with pytest.raises(RunConfigError, match=r"runner_config.image_size is 999 but the model's "
                                             r"vision_config.image_size is 224"):
        check_against_model(config, _model(224))


def test_image_processor_resolution_must_be_the_models():
    config = load_run_config({"processor": {"image_processor": {"image_resolution": 17}}}, task=ZERO_SHOT)
    with pytest.raises(RunConfigError, match=r"processor.image_processor.image_resolution is 17 but the model's "
                                             r"vision_config.image_size is 224"):
        check_against_model(config, _model(224))


@pytest.mark.parametrize("task, split", [(PRETRAIN, "train_dataset"), (PRETRAIN, "eval_dataset"),
                                         (ZERO_SHOT, "eval_dataset")])
def test_dataset_transform_sizes_must_be_the_models(task, split):
    transforms = [{"type": "Resize", "size": 224}, {"type": "CenterCrop", "size": 224}, "ToTensor"]
    config = load_run_config({split: {"transforms": transforms}}, task=task)
    check_against_model(config, _model(224))  # agreeing sizes are fine
    with pytest.raises(RunConfigError, match=rf"{split}.transforms\[0\].size is 224 but the model's "
                                             rf"vision_config.image_size is 336"):
        check_against_model(config, _model(336))


@pytest.mark.parametrize("task, key", [(PRETRAIN, "train_dataset.text_transforms.max_length"),
                                       (ZERO_SHOT, "eval_dataset.text_transforms.max_length"),
                                       (ZERO_SHOT, "processor.max_length")])
def test_max_length_must_be_the_models_context_length(task, key):
    config = load_run_config(None, task=task, overrides={key: 64})
    with pytest.raises(RunConfigError, match=rf"{key} is 64 but the model's context length "
                                             rf"\(text_config.max_position_embeddings\) is 77"):
        check_against_model(config, _model(224, 77))


def test_unset_sizes_follow_the_model():
    config = load_run_config(None, task=PRETRAIN)
    check_against_model(config, _model(32, 32))  # e.g. clip_tiny_shapes: 32 px, 32 tokens
    assert config.runner_config.image_size == 32 and config.processor.image_processor.image_resolution == 32
    assert config.train_dataset.text_transforms.max_length == config.eval_dataset.text_transforms.max_length == 32
    assert config.processor.max_length == 32


def test_a_contradiction_inside_the_yaml_fails_at_load_time():
    raw = _tiny()  # its model_config says 32 px
    raw["runner_config"]["image_size"] = 999
    with pytest.raises(RunConfigError, match=r"runner_config.image_size is 999 but model.model_config's "
                                             r"vision_config.image_size is 32"):
        load_run_config(raw)


@pytest.mark.parametrize("task, split", [(PRETRAIN, "train_dataset"), (ZERO_SHOT, "eval_dataset")])
def test_normalize_must_be_the_models_preprocessing(task, split):
    transforms = ["ToTensor", {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.26862954, 0.26130258,
                                                                                    0.27577711]}]
    with pytest.raises(RunConfigError, match=rf"{split}.transforms\[1\].mean: \[0.5, 0.5, 0.5\] differs from the "
                                             rf"model's preprocessing mean \[0.48145466, 0.4578275, 0.40821073\]"):
        load_run_config({split: {"transforms": transforms}}, task=task)
    # MindFormers' 0..255 form of CLIP's values is the same preprocessing.
    mean, std = [122.7709383, 116.7460125, 104.09373615], [68.5005327, 66.6321579, 70.32316305]
    load_run_config({split: {"transforms": [{"type": "Normalize", "mean": mean, "std": std}]}}, task=task)


def test_trainer_checks_the_run_config_against_its_model(tmp_path):
    from ms_clip import Trainer
    from ms_clip.registry import load_config

    trainer = Trainer(args={"runner_config": {"image_size": 224}, "output_dir": str(tmp_path)}, task=PRETRAIN,
                      model=load_config("clip_tiny"))
    with pytest.raises(RunConfigError, match=r"runner_config.image_size is 224 but the model's "
                                             r"vision_config.image_size is 32"):
        trainer._model_for()


# --------------------------------------------------------------------------- values at load time


@pytest.mark.parametrize("raw, message", [
    ({"optimizer": {"learning_rate": 0}}, r"optimizer.learning_rate: expected a learning rate > 0, got 0.0"),
    ({"optimizer": {"learning_rate": -1e-4}}, r"optimizer.learning_rate: expected a learning rate > 0"),
    ({"lr_schedule": {"learning_rate": 0}}, r"lr_schedule.learning_rate: expected a learning rate > 0"),
    ({"callbacks": ["MFLossMonitor", {"type": "CheckpointMonitor", "keep_checkpoint_max": "abc"}]},
     r"callbacks\[1\].keep_checkpoint_max: expected an integer, got 'abc'"),
    ({"callbacks": [{"type": "CheckpointMonitor", "keep_checkpoint_max": 0}]},
     r"callbacks\[0\].keep_checkpoint_max: expected a positive integer, got 0"),
    ({"runner_config": {"batch_size": 0}}, r"runner_config.batch_size: expected a positive integer, got 0"),
    ({"train_dataset": {"batch_size": 0}}, r"train_dataset.batch_size: expected a positive integer, got 0"),
    ({"eval_dataset": {"batch_size": -2}}, r"eval_dataset.batch_size: expected a positive integer, got -2"),
    ({"train_dataset": {"data_loader": {"type": "CsvCaptionDataLoader", "annotation_file": "/d/{split}.csv"}}},
     r"train_dataset.data_loader.annotation_file: '/d/\{split\}.csv' has the placeholder '\{split\}'; only "
     r"'\{stage\}' is replaced"),
    ({"eval_dataset": {"data_loader": {"type": "CsvCaptionDataLoader", "dataset_dir": "/d/{0}.tsv"}}},
     r"eval_dataset.data_loader.dataset_dir: '/d/\{0\}.tsv' has the placeholder"),
    ({"train_dataset": {"data_loader": {"type": "CsvCaptionDataLoader", "annotation_file": "/d/{stage.csv"}}},
     r"train_dataset.data_loader.annotation_file: '/d/\{stage.csv' is not a valid path template"),
])
def test_values_are_checked_when_loading(raw, message):
    with pytest.raises(RunConfigError, match=message):
        load_run_config(raw, task=PRETRAIN)


def test_a_stage_template_is_fine():
    config = load_run_config({"train_dataset": {"data_loader": {"type": "CsvCaptionDataLoader",
                                                                "annotation_file": "/d/{stage}.csv"}}}, task=PRETRAIN)
    assert config.train_dataset.data_loader.annotation_file == "/d/{stage}.csv"


def test_output_dir_that_is_a_file_fails_at_load_time(tmp_path):
    path = tmp_path / "results"
    path.write_text("not a folder")
    for task in (PRETRAIN, ZERO_SHOT):
        with pytest.raises(RunConfigError, match=rf"output_dir: {re.escape(str(path))} exists and is not a directory"):
            load_run_config({"output_dir": str(path)}, task=task)


# --------------------------------------------------------------------------- not implemented: warnings


@pytest.mark.parametrize("task, raw, key", [
    (PRETRAIN, {"runner_config": {"sink_mode": True}}, "runner_config.sink_mode"),
    (PRETRAIN, {"recompute_config": {"recompute": True}}, "recompute_config.recompute"),
    (PRETRAIN, {"train_dataset": {"repeat": 2}}, "train_dataset.repeat"),
    (ZERO_SHOT, {"eval_dataset": {"repeat": 3}}, "eval_dataset.repeat"),
    (PRETRAIN, {"layer_decay": 0.9}, "layer_decay"),
    (PRETRAIN, {"parallel": {"enable_parallel_optimizer": True}}, "parallel.enable_parallel_optimizer"),
    (PRETRAIN, {"callbacks": ["MFLossMonitor", {"type": "CheckpointMonitor", "async_save": True}]},
     "callbacks[1].async_save"),
    (PRETRAIN, {"callbacks": ["MFLossMonitor", "SummaryMonitor"]}, "callbacks[1]"),
    (PRETRAIN, {"callbacks": [{"type": "MFLossMonitor", "per_print_times": 5}]}, "callbacks[0].per_print_times"),
    (ZERO_SHOT, {"eval_callbacks": [{"type": "EvalCallBack"}]}, "eval_callbacks[0]"),
    (PRETRAIN, {"train_dataset": {"tokenizer": {"pad_token": "<|endoftext|>"}}}, "train_dataset.tokenizer.pad_token"),
    (PRETRAIN, {"eval_dataset": {"drop_remainder": True}}, "eval_dataset.drop_remainder"),
    (PRETRAIN, {"train_dataset_task": {"dataset_config": {"batch_size": 8}}}, "train_dataset_task.dataset_config"),
])
def test_not_implemented_keys_warn_by_name(task, raw, key, caplog):
    with caplog.at_level(logging.WARNING, logger="ms_clip.run_config"):
        load_run_config(raw, task=task)
    assert f"{key} is set to" in caplog.text and "does not implement it" in caplog.text


def test_shipped_yamls_load_without_warnings(caplog):
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "clip", "*.yaml")))
    assert len(paths) >= 10
    with caplog.at_level(logging.WARNING, logger="ms_clip"):
        for path in paths:
            load_run_config(path)
    assert caplog.text == ""


def test_overriding_an_anchored_dataset_overrides_its_copy(caplog):
    # MindFormers' YAMLs repeat train_dataset as train_dataset_task.dataset_config (a YAML anchor): one mapping.
    with caplog.at_level(logging.WARNING, logger="ms_clip"):
        config = load_run_config(TINY_YAML, overrides={"train_dataset.data_loader.dataset_dir": "/data/Flickr8k"})
    assert config.train_dataset_task.dataset_config.data_loader.dataset_dir == "/data/Flickr8k"
    assert caplog.text == ""


def test_train_dataset_batch_size_follows_runner_config_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="ms_clip"):
        config = load_run_config({"runner_config": {"batch_size": 16}, "train_dataset": {"batch_size": 8}},
                                 task=PRETRAIN)
    assert config.train_dataset.batch_size == 16
    assert "train_dataset.batch_size (8) differs from runner_config.batch_size (16)" in caplog.text


# --------------------------------------------------------------------------- pretraining reads its dataset keys


def test_pretraining_honours_prefetch_numa_and_tokenizer(tmp_path):
    import mindspore.dataset as ds

    from ms_clip.data.pipeline import apply_dataset_settings, dataset_options
    from ms_clip.tokenizer import default_bpe_path, tokenize

    config = load_run_config({"train_dataset": {"prefetch_size": 7, "numa_enable": False,
                                                "tokenizer": {"vocab_file": str(default_bpe_path())}}},
                             task=PRETRAIN)
    options = dataset_options(config.train_dataset)
    assert options["prefetch_size"] == 7 and options["numa_enable"] is False
    assert (options["tokenizer"](["a red circle"], context_length=77) == tokenize(["a red circle"])).all()
    assert dataset_options(load_run_config(None, task=PRETRAIN).train_dataset)["tokenizer"] is None
    before = ds.config.get_prefetch_size()
    try:
        apply_dataset_settings(options["prefetch_size"], options["numa_enable"])
        assert ds.config.get_prefetch_size() == 7
    finally:
        ds.config.set_prefetch_size(before)
    with pytest.raises(RunConfigError, match="train_dataset.tokenizer.vocab_file: .*missing.gz is not a file"):
        load_run_config({"train_dataset": {"tokenizer": {"vocab_file": str(tmp_path / "missing.gz")}}}, task=PRETRAIN)


# --------------------------------------------------------------------------- every key is read or listed


def _read_names() -> set:
    """Names the package's code reads: attributes, and string constants that are (dotted) key names.

    Not counted: field declarations (annotated assignments in class bodies: the schema itself), the
    NOT_IMPLEMENTED list, docstrings and prose (strings with spaces)."""
    names: set = set()
    files = glob.glob(os.path.join(ROOT, "ms_clip", "**", "*.py"), recursive=True)
    files.append(os.path.join(ROOT, "run_mindformer.py"))  # the CLI reads run_mode
    key_like = re.compile(r"^\.?[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\.?$")
    for path in files:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        skip = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                skip.update(id(n) for stmt in node.body if isinstance(stmt, ast.AnnAssign) for n in ast.walk(stmt))
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "NOT_IMPLEMENTED" for t in targets):
                    skip.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and key_like.match(node.value):
                names.update(part for part in node.value.split(".") if part)
    return names


def test_every_schema_key_is_read_or_listed_as_not_implemented():
    listed = {entry.path for entry in NOT_IMPLEMENTED}
    read = _read_names()
    unread = []
    for task in (PRETRAIN, ZERO_SHOT):
        for leaf in schema_leaves(config_class(task)):
            if leaf not in listed and leaf.split(".")[-1] not in read:
                unread.append(f"{task}: {leaf}")
    assert not unread, f"keys read by no code and not on run_config.NOT_IMPLEMENTED: {unread}"


def test_not_implemented_entries_name_real_keys_with_a_reason():
    leaves = set()
    for task in (PRETRAIN, ZERO_SHOT):
        leaves.update(schema_leaves(config_class(task)))
    for entry in NOT_IMPLEMENTED:
        assert entry.path in leaves, f"NOT_IMPLEMENTED names {entry.path}, which is no key of any task"
        assert len(entry.reason) > 10
    assert len({entry.path for entry in NOT_IMPLEMENTED}) == len(NOT_IMPLEMENTED)
