"""MindFormers users' config and checkpoint habits, with only the import changed (issue: MindFormers compatibility)."""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import sys

import numpy as np
import pytest

import mindspore as ms

import ms_clip
from ms_clip import (AutoConfig, AutoModel, AutoProcessor, AutoTokenizer, BaseModel, CLIPConfig, CLIPModel,
                     CLIPTextConfig, CLIPVisionConfig, CLIPWithLoss, MindFormerBook, MindFormerConfig, PreTrainedModel,
                     Trainer, create_model, loader)
from ms_clip.hub import HubError
from ms_clip.models import BaseConfig, CLIPImageProcessor, CLIPProcessor, CLIPTokenizer
from ms_clip.models.base import UnknownConfigKey
from ms_clip.tokenizer import UnknownTokenizerArgument
from ms_clip.weights import save_weights

# An OpenAI-shaped micro architecture (heads = width / 64, QuickGELU): what MindFormers' .ckpt files hold.
OPENAI_SHAPED = CLIPConfig(
    text_config=CLIPTextConfig(vocab_size=300, hidden_size=128, intermediate_size=512, num_hidden_layers=1,
                               num_attention_heads=2, max_position_embeddings=16),
    vision_config=CLIPVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=1,
                                   num_attention_heads=2, image_size=32, patch_size=16),
    projection_dim=32)


def _mindformers_name(name: str) -> str:
    """Our (OpenAI) parameter names -> MindFormers' (their convert_weight.py renamed this way)."""
    if name == "token_embedding.weight":
        return "token_embedding.embedding_table"
    for ln in ("ln_pre", "ln_post", "ln_1", "ln_2", "ln_final"):
        if f"{ln}." in name or name.startswith(f"{ln}."):
            return name.replace(".weight", ".gamma").replace(".bias", ".beta")
    return name.replace("in_proj_weight", "in_proj.weight").replace("in_proj_bias", "in_proj.bias")


def test_named_config_loads_its_weights_at_construction():
    config = CLIPConfig.from_pretrained("clip_tiny_shapes")
    assert config.checkpoint_name_or_path == "clip_tiny_shapes"
    built = CLIPModel(config)
    reference = CLIPModel.from_pretrained("clip_tiny_shapes")
    for a, b in zip(built.get_parameters(), reference.get_parameters()):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert CLIPConfig.from_pretrained("clip_tiny").checkpoint_name_or_path == ""  # no weights registered


def test_named_config_without_network_is_an_error_not_random(monkeypatch, tmp_path):
    monkeypatch.setenv("MS_CLIP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MS_CLIP_DOWNLOAD_BASE", "http://127.0.0.1:9")  # nothing listens there
    config = CLIPConfig.from_pretrained("clip_vit_b_32")
    assert config.checkpoint_name_or_path == "clip_vit_b_32"
    with pytest.raises(HubError, match="cannot download the pretrained weights of 'clip_vit_b_32'"):
        CLIPModel(config)
    # create_model is the explicit way to a random model of a named architecture.
    assert create_model("clip_tiny").config.checkpoint_name_or_path == ""


def test_mindformers_ckpt_loads_directly(tmp_path):
    ms.set_seed(3)
    ours = create_model(OPENAI_SHAPED)
    renamed = {_mindformers_name(p.name): p.asnumpy() for p in ours.get_parameters()}
    assert "ln_final.gamma" in renamed and "token_embedding.embedding_table" in renamed
    path = save_weights(renamed, str(tmp_path / "mindformers_clip.ckpt"))  # no YAML beside it, as MindFormers'
    loaded = CLIPModel.from_pretrained(path)
    assert loaded.config.architecture() == OPENAI_SHAPED.architecture()
    for a, b in zip(loaded.get_parameters(), ours.get_parameters()):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    # --load_checkpoint takes it too (the run's model section names the same architecture).
    run = {"load_checkpoint": path, "trainer": {"model_name": ""}, "model": {"model_config": None}}
    assert loader.model_for_run(run, require_weights=True).config.architecture() == OPENAI_SHAPED.architecture()


def test_mindformers_keyword_spellings_and_no_silent_attributes():
    assert CLIPConfig(dtype="float16").compute_dtype == "float16"
    assert CLIPTextConfig(drop_out=0.25).dropout == 0.25
    config = CLIPConfig()
    config.dtype = "float16"  # MindFormers' attribute name
    assert config.compute_dtype == "float16"
    with pytest.raises(UnknownConfigKey, match=r"CLIPConfig has no field 'projection'.*Did you mean 'projection_dim'"):
        config.projection = 8
    with pytest.raises(TypeError, match=r"unknown key 'hiden_size'.*Did you mean 'hidden_size'"):
        CLIPTextConfig(hiden_size=3)


# =====================================================================================================================
# MindFormers' own CLIP tests, model card and run YAMLs of releases 1.0-1.2, with `mindformers` replaced by `ms_clip`
# (issue 15). Written here from what those files call and expect, not copied. Offline substitutions:
#   * a model *with weights* ("clip_vit_b_32" in MindFormers' tests, downloaded there) -> "clip_tiny_shapes", whose
#     weights ship inside ms_clip; names used only for configs, tokenizers and processors stay "clip_vit_b_32"
#     (those need no download);
#   * configs/clip/model_config/clip_vit_b_32.yaml (MindFormers' model YAML) -> ms_clip/model_configs/clip_vit_b_32.yaml;
#   * MindFormers' run YAMLs (tests/data/mindformers_yamls, unchanged) keep every key; only the tower sizes in
#     model.model_config shrink to TINY_TOWERS (one layer, width 64) so a run takes seconds, and a zero-shot run
#     loads a checkpoint saved here (--load_checkpoint) instead of downloading ViT-B/32.
# =====================================================================================================================
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MF_YAMLS = os.path.join(REPO, "tests", "data", "mindformers_yamls")
MF_PRETRAIN = os.path.join(MF_YAMLS, "run_clip_vit_b_32_pretrain_flickr8k.yaml")
MF_ZERO_SHOT = os.path.join(MF_YAMLS, "run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml")
MF_ZERO_SHOT_336 = os.path.join(MF_YAMLS, "run_clip_vit_l_14@336_zero_shot_image_classification_cifar100.yaml")
MODEL_YAML_B32 = os.path.join(REPO, "ms_clip", "model_configs", "clip_vit_b_32.yaml")
WITH_WEIGHTS = "clip_tiny_shapes"
# The only change made to MindFormers' YAMLs: smaller towers (image size, patch, context length unchanged).
TINY_TOWERS = {"text_config.hidden_size": 64, "text_config.intermediate_size": 128, "text_config.num_hidden_layers": 1,
               "text_config.num_attention_heads": 2, "vision_config.hidden_size": 64,
               "vision_config.intermediate_size": 128, "vision_config.num_hidden_layers": 1,
               "vision_config.num_attention_heads": 2, "projection_dim": 32}
HELLO = [49406, 3306, 1002, 286, 49407]  # "hello world?" in MindFormers' tokenizer test


@pytest.fixture
def pynative():
    """Tiny models called a few times: PyNative skips graph compilation (conftest restores GRAPH_MODE after)."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.GRAPH_MODE)


def _tiny_options():
    return [f"model.model_config.{k}={v}" for k, v in TINY_TOWERS.items()]


def _tiny_model_config(yaml_path):
    raw = MindFormerConfig(yaml_path).model.model_config
    raw.merge_from_dict(TINY_TOWERS)
    return raw.to_dict()


# ------------------------------------------------------------------------------------------ test_clip_config.py


def test_clip_config_calls(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="ms_clip"):
        AutoConfig.show_support_list()
        CLIPConfig.show_support_list()
    assert "clip_vit_b_32" in caplog.text
    config_a = AutoConfig.from_pretrained("clip_vit_b_32")  # a name
    config_b = AutoConfig.from_pretrained(MODEL_YAML_B32)  # a model YAML
    config_c = CLIPConfig.from_pretrained("clip_vit_b_32")
    config_d = CLIPConfig.from_pretrained(MODEL_YAML_B32)
    assert "clip_vit_b_32" in CLIPConfig.get_support_list()
    # Positional sub-configs, MindFormers' form.
    config_e = CLIPConfig(CLIPTextConfig(hidden_size=512, vocab_size=49408, max_position_embeddings=77,
                                         num_hidden_layers=12),
                          CLIPVisionConfig(hidden_size=768, image_size=224, patch_size=32, num_hidden_layers=12),
                          projection_dim=512)
    assert config_e.architecture() == config_c.architecture()
    assert config_c.save_pretrained().startswith(str(tmp_path / "checkpoint_save"))  # MindFormers' default folder
    assert config_d.save_pretrained(str(tmp_path / "saved"), "clip_vit_b_32").endswith("clip_vit_b_32.yaml")
    config_e.save_pretrained()
    for config in (config_a, config_b, config_c, config_d):
        assert isinstance(config, BaseConfig) and isinstance(config, CLIPConfig)
    assert isinstance(config_b, type(config_c))
    # Chinese-CLIP: AutoConfig picks the family's class.
    assert type(AutoConfig.from_pretrained("chinese_clip_tiny")).__name__ == "ChineseCLIPConfig"


# ------------------------------------------------------------------------------------------- test_clip_model.py


def test_clip_model_calls(tmp_path, caplog):
    download_folder = MindFormerBook.get_default_checkpoint_download_folder()
    assert os.path.isabs(download_folder) and os.path.isdir(MindFormerBook.get_project_path())
    with caplog.at_level(logging.INFO, logger="ms_clip"):
        AutoModel.show_support_list()
        CLIPModel.show_support_list()
    assert WITH_WEIGHTS in AutoModel.get_support_list() and WITH_WEIGHTS in CLIPModel.get_support_list()
    config = AutoConfig.from_pretrained(WITH_WEIGHTS)
    model_a = AutoModel.from_pretrained(WITH_WEIGHTS)  # a name: model and weights
    save_directory = str(tmp_path / "clip")
    model_a.save_pretrained(save_directory, save_name=WITH_WEIGHTS)
    model_b = AutoModel.from_pretrained(save_directory)  # a directory: model and weights
    model_c = AutoModel.from_config(os.path.join(REPO, "configs", "clip", "run_clip_tiny_pretrain_flickr8k.yaml"))
    model_d = AutoModel.from_config(config)  # the named config carries its weights (MindFormers)
    model_i = CLIPModel.from_pretrained(WITH_WEIGHTS)
    model_j = CLIPModel.from_pretrained(save_directory)
    model_k = CLIPModel(config)  # loads the named weights
    config.checkpoint_name_or_path = None  # MindFormers' way to ask for no weights
    model_l = CLIPModel(config)
    model_i.save_pretrained(save_directory, save_name=WITH_WEIGHTS)
    for model in (model_a, model_b, model_c, model_d, model_i, model_j, model_k, model_l):
        assert isinstance(model, CLIPModel) and isinstance(model, BaseModel) and isinstance(model, PreTrainedModel)
    reference = model_a.get_parameters()
    for other in (model_b, model_d, model_i, model_j, model_k):
        for a, b in zip(reference, other.get_parameters()):
            np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert not np.array_equal(model_l.visual.conv1.weight.asnumpy(), model_a.visual.conv1.weight.asnumpy())
    # AutoModel picks the family's class.
    assert type(AutoModel.from_config("chinese_clip_tiny")).__name__ == "ChineseCLIPModel"


def test_model_calling_forms(pynative):
    """MindFormers' CLIPModel(image, text) gave logits in eval and the loss in training; ms_clip's equivalents."""
    model = CLIPModel.from_pretrained(WITH_WEIGHTS)
    processed = AutoProcessor.from_pretrained(WITH_WEIGHTS)(np.random.random((5, 3, 578, 213)),
                                                            ["a boy", "a girl", "a women", "a men"])
    image_embeds, text_embeds, logit_scale = model(**processed)  # keyword names image= / text=
    dim = model.config.projection_dim
    assert image_embeds.shape == (5, dim) and text_embeds.shape == (4, dim) and logit_scale.shape == ()
    hf = model(pixel_values=processed["image"], input_ids=processed["text"])  # HF's keyword names
    np.testing.assert_array_equal(hf[0].asnumpy(), image_embeds.asnumpy())
    logits_per_image, logits_per_text = model.get_logits(**processed)  # MindFormers' eval output
    assert logits_per_image.shape == (5, 4) and logits_per_text.shape == (4, 5)
    again, _ = model.get_logits(pixel_values=processed["image"], input_ids=processed["text"][None])  # 3-D text
    np.testing.assert_allclose(again.asnumpy(), logits_per_image.asnumpy(), rtol=1e-6)
    label = ms.Tensor(np.arange(5))
    assert model.get_logits(processed["image"], processed["text"], label)[1] is label  # (logits, label)
    pairs = AutoProcessor.from_pretrained(WITH_WEIGHTS)(np.random.random((4, 3, 40, 40)), ["a", "b", "c", "d"])
    loss = CLIPWithLoss(model)(pairs["image"], pairs["text"])  # MindFormers' training form: the loss
    assert loss.shape == () and np.isfinite(float(loss.asnumpy()))
    with pytest.raises(ms_clip.MsClipError, match="get_logits"):
        model(processed["image"], processed["text"], label=label)


# ---------------------------------------------------------------------------------------- test_clip_tokenizer.py


def test_clip_tokenizer_calls_and_values(tmp_path):
    import mindspore as ms_

    tokenizer = CLIPTokenizer.from_pretrained("clip_vit_b_32")
    assert isinstance(tokenizer, CLIPTokenizer) and tokenizer.tokenize("hello world?") == ["hello</w>", "world</w>",
                                                                                          "?</w>"]
    auto = AutoTokenizer.from_pretrained("clip_vit_b_32")
    assert isinstance(auto, CLIPTokenizer) and auto.tokenize("hello world?") == ["hello</w>", "world</w>", "?</w>"]
    pad = tokenizer.pad_token_id
    res = tokenizer("hello world?", max_length=8, padding="max_length")
    assert res == {"attention_mask": [1, 1, 1, 1, 1, 0, 0, 0], "input_ids": HELLO + [pad] * 3}
    assert res.input_ids == res["input_ids"]  # BatchEncoding: attribute access too
    res = tokenizer("hello world?", max_length=8, padding="max_length", return_tensors="ms")
    assert len(res) == 2 and all(isinstance(res[k], ms_.Tensor) for k in res.keys())
    batch = tokenizer(["hello world?", "Who are you?", "I am find, thank you."], max_length=12, padding="max_length")
    assert batch == {"input_ids": [HELLO + [pad] * 7, [49406, 822, 631, 592, 286, 49407] + [pad] * 6,
                                   [49406, 328, 687, 1416, 267, 1144, 592, 269, 49407] + [pad] * 3],
                     "attention_mask": [[1] * 5 + [0] * 7, [1] * 6 + [0] * 6, [1] * 9 + [0] * 3]}
    # HF call surface: add_special_tokens=False, all_special_tokens, add_tokens, unknown keywords are errors.
    assert tokenizer("hello world?", add_special_tokens=False, padding=False).input_ids == HELLO[1:-1]
    assert tokenizer.all_special_tokens == ["<|startoftext|>", "<|endoftext|>", "!"]
    assert tokenizer.add_tokens(["<shape>", "<shape>"]) == 1
    assert tokenizer("a <shape>", padding=False).input_ids == [49406, 320, 49408, 49407]
    with pytest.raises(UnknownTokenizerArgument, match="max_lenght"):
        tokenizer("hello", max_lenght=8)
    # save_pretrained / from_pretrained round trip (added tokens included); AutoTokenizer reads the folder too.
    folder = tokenizer.save_pretrained(str(tmp_path / "tok"), save_name="clip_vit_b_32")
    for again in (CLIPTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)):
        assert again("a <shape>", max_length=8) == tokenizer("a <shape>", max_length=8)
    # The model's context length is the default max_length; Chinese-CLIP gets its WordPiece tokenizer.
    assert len(AutoTokenizer.from_pretrained(WITH_WEIGHTS)("a circle").input_ids) == 32
    assert type(AutoTokenizer.from_pretrained("chinese_clip_tiny")).__name__ == "BertTokenizer"


# ---------------------------------------------------------------------------------------- test_clip_processor.py


def test_clip_processor_calls_and_shapes(pynative, tmp_path, caplog):
    import mindspore as ms_

    img_processor = CLIPImageProcessor(image_resolution=224)
    tokenizer = CLIPTokenizer.from_pretrained("clip_vit_b_32")
    with caplog.at_level(logging.INFO, logger="ms_clip"):
        CLIPProcessor.show_support_list()
    assert "clip_vit_b_32" in CLIPProcessor.get_support_list()
    pro_a = CLIPProcessor.from_pretrained("clip_vit_b_32")
    pro_b = CLIPProcessor.from_pretrained(MODEL_YAML_B32)
    pro_c = CLIPProcessor(img_processor, tokenizer)
    pro_d = AutoProcessor.from_pretrained("clip_vit_b_32")
    pro_e = AutoProcessor.from_pretrained(MODEL_YAML_B32)
    image, images = np.random.random((3, 578, 213)), np.random.random((5, 3, 578, 213))
    text, texts = "a boy", ["a boy", "a girl", "a women", "a men"]
    for pro in (pro_a, pro_b, pro_c):
        for img, txt, n_img, n_txt in ((image, text, 1, 1), (image, texts, 1, 4), (images, text, 5, 1),
                                       (images, texts, 5, 4)):
            out = pro(img, txt)
            assert out["image"].shape == (n_img, 3, 224, 224) and out["text"].shape == (n_txt, 77)
            assert isinstance(out["image"], ms_.Tensor) and isinstance(out["text"], ms_.Tensor)
    pro_d(image, text)
    pro_e(image, texts)
    save_directory = str(tmp_path / "clip")
    for pro in (pro_a, pro_c, pro_b):
        pro.save_pretrained(save_directory, save_name="clip_vit_b_32")
    again = CLIPProcessor.from_pretrained(save_directory)
    np.testing.assert_array_equal(again(image, texts)["text"].asnumpy(), pro_a(image, texts)["text"].asnumpy())
    img_processor.save_pretrained(str(tmp_path / "img"))
    assert CLIPImageProcessor.from_pretrained(str(tmp_path / "img")).image_resolution == 224
    # The model's size and context length: ViT-L/14@336 -> 336 px; clip_tiny_shapes -> 32 px and 32 tokens.
    assert AutoProcessor.from_pretrained("clip_vit_l_14@336").image_processor.image_resolution == 336
    tiny = AutoProcessor.from_pretrained(WITH_WEIGHTS)(images, texts)
    assert tiny["image"].shape == (5, 3, 32, 32) and tiny["text"].shape == (4, 32)
    # MindFormers: output = clip(**processed_data); output[0].shape == (5, 4). ms_clip: get_logits (see README).
    logits_per_image, logits_per_text = AutoModel.from_pretrained(WITH_WEIGHTS).get_logits(**tiny)
    assert logits_per_image.shape == (5, 4) and logits_per_text.shape == (4, 5)


# ------------------------------------------------------------------------- test_zero_shot_image_classification_pipeline


def test_zero_shot_pipeline_class_with_a_model_name(pynative, tmp_path):
    from ms_clip.pipelines import ZeroShotImageClassificationPipeline
    from ms_clip.tools.image_tools import load_image

    path = tmp_path / "sunflower.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)).save(path)
    classifier = ZeroShotImageClassificationPipeline(model=WITH_WEIGHTS,
                                                     candidate_labels=["sunflower", "tree", "dog", "cat", "toy"],
                                                     hypothesis_template="This is a photo of {}.")
    img = load_image(str(path))
    res_single, res_multi = classifier(img), classifier([img, img, img])
    assert len(res_single) == 1 and len(res_multi) == 3
    assert sorted(p["label"] for p in res_single[0]) == sorted(["sunflower", "tree", "dog", "cat", "toy"])


# --------------------------------------------------------------------------------------- MindFormerBook, names


def test_mindformer_book_and_module_paths(caplog):
    from ms_clip.mindformer_book import MindFormerBook as Book
    from ms_clip.tools import logger
    from ms_clip.tools.register.config import MindFormerConfig as Config

    assert Book is MindFormerBook and Config is MindFormerConfig and logger.name == "ms_clip"
    models = MindFormerBook.get_model_support_list()
    assert "clip_vit_b_32" in models["clip"] and "chinese_clip_vit_b_16" in models["chinese_clip"]
    assert set(MindFormerBook.get_model_name_support_list()) >= {"clip_vit_b_32", "clip_vit_l_14@336"}
    tasks = MindFormerBook.get_trainer_support_task_list()
    pretrain = tasks["contrastive_language_image_pretrain"]
    assert pretrain["clip_vit_b_32"].endswith("run_clip_vit_b_32_pretrain_flickr8k.yaml")
    assert pretrain["common"] == pretrain["clip_vit_b_32"]
    assert "clip_vit_l_14@336" in tasks["zero_shot_image_classification"]
    assert list(MindFormerBook.get_pipeline_support_task_list()) == ["zero_shot_image_classification"]
    with caplog.at_level(logging.INFO, logger="ms_clip"):
        MindFormerBook.show_model_support_list()
        MindFormerBook.show_trainer_support_model_list("zero_shot_image_classification")
        MindFormerBook.show_pipeline_support_model_list()
    assert "clip_vit_b_16" in caplog.text
    with pytest.raises(ms_clip.MsClipError, match="unknown trainer task"):
        MindFormerBook.show_trainer_support_model_list("image_generation")


def test_mindformer_config_is_an_attribute_dict_trainer_accepts(tmp_path):
    config = MindFormerConfig(MF_PRETRAIN)
    assert config.runner_config.batch_size == 32 and config.trainer.model_name == "clip_vit_b_32"
    assert config.no_such_key is None  # MindFormers' behaviour for a missing key
    config.train_dataset.data_loader.dataset_dir = str(tmp_path / "Flickr8k")
    # The YAML anchor stays one section: the task's copy follows (MindFormers' tests set both by hand).
    assert config.train_dataset_task.dataset_config.data_loader.dataset_dir == str(tmp_path / "Flickr8k")
    config.train_dataset_task.dataset_config.data_loader.dataset_dir = str(tmp_path / "Flickr8k")
    config.output_dir = str(tmp_path / "out")
    trainer = Trainer(task="contrastive_language_image_pretrain", args=config)
    assert trainer.config.train_dataset.data_loader.dataset_dir == str(tmp_path / "Flickr8k")
    assert trainer.config.output_dir == str(tmp_path / "out") and trainer.config.callbacks[1].prefix == "mindformers"
    with pytest.raises(ms_clip.MsClipError, match="run config file"):
        MindFormerConfig(str(tmp_path / "missing.yaml"))


# ---------------------------------------------------------------------------------------------- run YAMLs, CLI


def test_all_stored_mindformers_yamls_load_naming_what_is_not_implemented(caplog):
    from ms_clip.run_config import load_run_config

    paths = sorted(glob.glob(os.path.join(MF_YAMLS, "*.yaml")))
    assert len(paths) == 4
    for path in paths:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ms_clip"):
            config = load_run_config(path)
        assert "remote_save_url is set to" in caplog.text
        if "zero_shot" in path:  # 'linear' Resize and the single template: warned about, not silently ignored
            assert "interpolation is set to 'linear'" in caplog.text
            assert "hypothesis_template is set to 'a picture of {}'" in caplog.text
        assert config.context.device_target == "Ascend"


def test_cli_accepts_mindformers_flags_and_warns_about_unimplemented_ones(caplog):
    run_mindformer = _run_mindformer()
    argv = ["--config", MF_PRETRAIN, "--mode", "1", "--sink_mode", "True", "--num_samples", "10",
            "--gradient_accumulation_steps", "2", "--profile", "True", "--auto_trans_ckpt", "False",
            "--src_strategy_path_or_dir", "strategy/", "--only_save_strategy", "False",
            "--strategy_load_checkpoint", "s.ckpt", "--remote_save_url", "obs://bucket", "--transform_process_num", "2",
            "--register_path", "ext/"]
    args = run_mindformer.build_parser().parse_args(argv)
    overrides = run_mindformer.overrides_from_args(args)
    assert overrides["context.mode"] == 1 and overrides["runner_config.gradient_accumulation_steps"] == 2
    with caplog.at_level(logging.WARNING):
        assert run_mindformer.warn_unimplemented_flags(args) == ["num_samples", "strategy_load_checkpoint",
                                                                 "transform_process_num", "register_path"]
        from ms_clip.run_config import load_run_config

        config = load_run_config(MF_PRETRAIN, overrides=overrides)
    assert config.context.mode == 1 and config.runner_config.gradient_accumulation_steps == 2
    for key in ("runner_config.sink_mode", "profile", "src_strategy_path_or_dir", "remote_save_url", "--num_samples"):
        assert key in caplog.text
    # An explicit device the install lacks is a one-line error naming the fix.
    from ms_clip.trainer import device_available

    if not device_available("Ascend"):
        with pytest.raises(ms_clip.MsClipError, match="use --device_target CPU"):
            run_mindformer.main(["--config", MF_PRETRAIN, "--device_target", "Ascend"])


def _flickr8k(root, n_images=40):
    from ms_clip.demo.synthetic import write_flickr8k

    return write_flickr8k(str(root), n_images=n_images, image_size=48, split_fractions=(0.8, 0.1, 0.1))


def _run_mindformer():
    sys.path.insert(0, REPO)
    try:
        import run_mindformer
    finally:
        sys.path.remove(REPO)
    return run_mindformer


def test_mindformers_pretrain_yaml_runs_through_run_mindformer(tmp_path, monkeypatch, caplog, capsys):
    """MindFormers' documented command, its YAML as shipped (data at its default ./checkpoint_download/Flickr8k):
    device Ascend falls back to CPU, train starts from scratch (checkpoint_name_or_path is clip_vit_b_32 there),
    do_eval without --eval_dataset_dir evaluates the training folder's test split, MindFormers' log fields.
    (run_mindformer.main in this process: the same code path as the command, without a second MindSpore start-up.)"""
    _flickr8k(tmp_path / "checkpoint_download")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MS_CLIP_DOWNLOAD_BASE", "http://127.0.0.1:9")  # no download may happen
    argv = ["--config", MF_PRETRAIN, "--run_mode", "train", "--epochs", "1", "--do_eval", "True",
            "--output_dir", str(tmp_path / "output"), "--sink_mode", "False",
            "--options", *_tiny_options(), "runner_wrapper.scale_sense.loss_scale_value=128"]
    with caplog.at_level(logging.INFO, logger="ms_clip"):
        assert _run_mindformer().main(argv) == 0
    log = caplog.text
    assert "has no Ascend backend: running on CPU" in log
    assert "is not loaded (training starts from scratch, as in MindFormers)" in log
    assert "evaluating on the 'test' split of the training folder" in log
    # (dtype float16, as the YAML says: a step whose gradients overflow is skipped and not counted)
    mindformers_fields = re.search(r"Epoch:\[\s*1/\s*1\], step:\[\s*[01]/\s*1\], loss: \d", log)
    assert mindformers_fields, [line for line in log.splitlines() if "poch" in line]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["total_steps"] == 1 and np.isfinite(summary["loss"]) and "eval" in summary
    assert os.path.isfile(summary["checkpoint"])


@pytest.fixture(scope="module")
def tiny_zero_shot(tmp_path_factory):
    """MindFormers' zero-shot YAML (tiny towers), a checkpoint of that architecture saved here, a small CIFAR-100."""
    from ms_clip.demo.shapes_world import write_shapes_cifar100

    root = tmp_path_factory.mktemp("zero_shot")
    ms.set_seed(0)
    weights = create_model(CLIPConfig.from_dict(_tiny_model_config(MF_ZERO_SHOT))).save_pretrained(str(root / "w"))
    cifar = write_shapes_cifar100(str(root), per_class=1)
    return {"weights": weights, "cifar": cifar, "root": root}


def test_mindformers_zero_shot_yaml_evaluates_and_predicts_the_eval_set(tiny_zero_shot):
    config = MindFormerConfig(MF_ZERO_SHOT)
    config.model.model_config.merge_from_dict(TINY_TOWERS)
    config.eval_dataset.data_loader.dataset_dir = tiny_zero_shot["cifar"]
    config.output_dir = str(tiny_zero_shot["root"] / "out")
    config.load_checkpoint = tiny_zero_shot["weights"]
    trainer = Trainer(args=config)  # the task from trainer.type, as run_mindformer.py does
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["Top1 Accuracy"] <= 1.0
    # --run_mode predict without --predict_data: MindFormers predicted over the eval dataset.
    predictions = Trainer(args=config).predict()
    assert len(predictions) == 12 and len(predictions[0]) == 3  # 12 test images, the YAML's top_k: 3


def test_context_length_and_image_size_follow_the_model():
    """Trainer(model=...) without explicit sizes takes them from the model (issue item 8)."""
    from types import SimpleNamespace

    from ms_clip.run_config import check_against_model
    from ms_clip.tasks.zero_shot import _image_processor

    large = Trainer(task="zero_shot_image_classification", model="clip_vit_l_14@336")
    config = AutoConfig.from_pretrained("clip_vit_l_14@336")
    check_against_model(large.config, config)
    assert large.config.runner_config.image_size == 336
    assert _image_processor(SimpleNamespace(config=config), large.config).image_resolution == 336
    tiny = Trainer(task="contrastive_language_image_pretrain", model=WITH_WEIGHTS)
    check_against_model(tiny.config, AutoConfig.from_pretrained(WITH_WEIGHTS))
    assert tiny.config.train_dataset.text_transforms.max_length == 32 and tiny.config.runner_config.image_size == 32
    # MindFormers' YAML for ViT-L/14@336 spells 336 everywhere and agrees with the model.
    check_against_model(ms_clip.run_config.load_run_config(MF_ZERO_SHOT_336), config)


def test_tiny_shapes_pretrain_trains_with_its_own_context_length(tmp_path):
    """Trainer(task="contrastive_language_image_pretrain", model="clip_tiny_shapes").train(): 32-token texts."""
    flickr = _flickr8k(tmp_path, n_images=40)
    trainer = Trainer(task="contrastive_language_image_pretrain", model=WITH_WEIGHTS, train_dataset=flickr)
    trainer.config.output_dir = str(tmp_path / "out")
    trainer.config.runner_config.max_steps = 1
    trainer.config.runner_config.batch_size = 8
    summary = trainer.train()
    assert summary["step"] == 1 and np.isfinite(summary["loss"])
