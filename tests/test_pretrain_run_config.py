"""Run configs: every shipped pretrain YAML validates; unknown keys anywhere fail with the key path and the
closest valid key; value kinds are checked; overrides; task resolution."""
import copy
import glob
import os

import pytest
import yaml

from ms_clip.models.config import CLIPConfig
from ms_clip.registry import load_config
from ms_clip.run_config import (RunConfig, RunConfigError, apply_overrides, config_class, load_run_config,
                                resolve_task)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN_YAMLS = sorted(glob.glob(os.path.join(ROOT, "configs", "clip", "run_clip_*_pretrain_flickr8k.yaml")))
TASK = "contrastive_language_image_pretrain"


def test_all_pretrain_yamls_ship_and_validate():
    names = {os.path.basename(p) for p in PRETRAIN_YAMLS}
    for arch in ("vit_b_32", "vit_b_16", "vit_l_14", "vit_l_14@336", "tiny"):
        assert f"run_clip_{arch}_pretrain_flickr8k.yaml" in names
    for path in PRETRAIN_YAMLS:
        config = load_run_config(path)  # task from trainer.type
        assert config["trainer"]["type"] == "ContrastiveLanguageImagePretrainTrainer"
        assert config["model"]["model_config"]["checkpoint_name_or_path"] is not None
        image_size = config["model"]["model_config"]["vision_config"]["image_size"]
        sizes = [t.get("size") for t in config["train_dataset"]["transforms"] if isinstance(t, dict) and "size" in t]
        assert sizes and all(s == image_size for s in sizes), path
        # The run YAML's architecture is the registry's architecture of trainer.model_name.
        ours = CLIPConfig.from_dict(config["model"]["model_config"]).to_dict()
        registry = load_config(config["trainer"]["model_name"]).to_dict()
        for key in ("checkpoint_name_or_path", "compute_dtype"):
            ours.pop(key), registry.pop(key)
        assert ours == registry, path


def _tiny():
    with open(os.path.join(ROOT, "configs", "clip", "run_clip_tiny_pretrain_flickr8k.yaml")) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.__setitem__("runner_confg", {}), "unknown key 'runner_confg'. Did you mean 'runner_config'?"),
    (lambda c: c["runner_config"].__setitem__("epoch", 3), "unknown key 'runner_config.epoch'. Did you mean 'epochs'?"),
    (lambda c: c["train_dataset"]["data_loader"].__setitem__("dataset_dri", "x"),
     "unknown key 'train_dataset.data_loader.dataset_dri'. Did you mean 'dataset_dir'?"),
    (lambda c: c["context"].__setitem__("device_targte", "CPU"),
     "unknown key 'context.device_targte'. Did you mean 'device_target'?"),
    (lambda c: c["model"]["model_config"]["vision_config"].__setitem__("patch_sise", 8),
     "model.model_config.vision_config: unknown key 'patch_sise'. Did you mean 'patch_size'?"),
    (lambda c: c["callbacks"][1].__setitem__("keep_checkpoint_mx", 2),
     "unknown key 'callbacks[1].keep_checkpoint_mx'. Did you mean 'keep_checkpoint_max'?"),
    (lambda c: c["lr_schedule"].__setitem__("warmup_step", 2),
     "unknown key 'lr_schedule.warmup_step'. Did you mean 'warmup_steps'?"),
    (lambda c: c["train_dataset_task"]["dataset_config"]["data_loader"].__setitem__("stag", "train"),
     "unknown key 'train_dataset_task.dataset_config.data_loader.stag'. Did you mean 'stage'?"),
    (lambda c: c["runner_config"].__setitem__("epochs", "ten"), "runner_config.epochs: expected an integer"),
    (lambda c: c["runner_config"].__setitem__("batch_size", 0), "runner_config.batch_size: expected a positive"),
    (lambda c: c["lr_schedule"].__setitem__("type", "cosin"), "Did you mean 'cosine'?"),
    (lambda c: c["train_dataset"]["data_loader"].__setitem__("on_bad_image", "ignore"), "expected 'skip' or 'fail'"),
    (lambda c: c["callbacks"].append({"type": "CheckpointMonitr"}), "Did you mean 'CheckpointMonitor'?"),
    (lambda c: c["runner_config"].update(lock_image=True, lock_text=True), "nothing would train"),
])
def test_bad_keys_and_values_are_named_with_a_suggestion(mutate, message, tmp_path):
    config = _tiny()  # yaml.safe_load shares the anchored dataset dict with *_task.dataset_config
    config["train_dataset_task"]["dataset_config"] = copy.deepcopy(config["train_dataset"])
    mutate(config)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(RunConfigError) as err:
        load_run_config(str(path))
    assert message in str(err.value)
    assert str(path) in str(err.value)  # which file


def test_defaults_fill_and_numbers_from_yaml_strings():
    config = load_run_config({"optimizer": {"learning_rate": "1e-5"}, "context": None}, task=TASK)
    assert config["optimizer"]["learning_rate"] == 1e-5  # PyYAML reads 1e-5 as a string
    assert config["context"]["mode"] == 0 and config["runner_config"]["epochs"] == 5
    assert config["train_dataset"]["data_loader"]["type"] == "Flickr8kDataLoader"
    assert config["eval_dataset"]["data_loader"]["stage"] == "test"


def test_overrides_are_checked_like_yaml_keys():
    config = load_run_config(None, task=TASK, overrides=["runner_config.epochs=3", "callbacks.1.prefix=run"])
    assert config["runner_config"]["epochs"] == 3 and config["callbacks"][1]["prefix"] == "run"
    with pytest.raises(RunConfigError, match="unknown key 'runner_config.epohcs'. Did you mean 'epochs'"):
        load_run_config(None, task=TASK, overrides={"runner_config.epohcs": 3})
    raw = {}
    apply_overrides(raw, {"a.b": None})  # unset CLI flags are skipped
    assert raw == {}


def test_task_resolution():
    assert resolve_task("general", {"trainer": {"type": "ConstrastiveLanguageImagePretrainTrainer"}}) == TASK
    with pytest.raises(RunConfigError, match="Did you mean 'zero_shot_image_classification'"):
        resolve_task("zero_shot_image_clasification")
    with pytest.raises(RunConfigError, match="cannot tell the task"):
        resolve_task("general", {})


def test_task_sections_extend_the_common_ones():
    # The task's run config is RunConfig's sections plus the task's own (declared in the task module).
    cls = config_class(TASK)
    assert issubclass(cls, RunConfig) and set(RunConfig()) < set(cls()) and "train_dataset" in cls()
    config = cls.from_dict({"runner_config": {"epochs": 2}})
    assert config.runner_config.epochs == 2 and config["runner_config"]["batch_size"] == 32
