"""MindFormers users' config and checkpoint habits, with only the import changed (issue: MindFormers compatibility)."""
from __future__ import annotations

import numpy as np
import pytest

import mindspore as ms

from ms_clip import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, create_model, loader
from ms_clip.hub import HubError
from ms_clip.models.base import UnknownConfigKey
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
