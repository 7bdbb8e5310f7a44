"""Issue 18: the way back to PyTorch (round trips, open_clip / HF loading, feature parity) and deployment
(MindIR reload with static and dynamic batch, ONNX through onnxruntime, the export run mode), plus the
one-line messages of features whose optional package is missing."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mindspore import Tensor

from ms_clip import CLIPModel, loader
from ms_clip.convert import convert_weight, read_source
from ms_clip.export import DeployedModel, ExportError, _resize_grid, export_mindir
from ms_clip.export_torch import TorchExportError, export_torch, invert_rules, to_hf_state_dict
from ms_clip.features import encode_images, encode_token_ids
from ms_clip.tokenizer import tokenize
from ms_clip.weights import read_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERT_CLI = os.path.join(REPO, "convert", "convert_weight.py")
SHIPPED = "clip_tiny_shapes"  # a trained model inside the package: no weight is a trivial 0/1
ENV = {**os.environ, "GLOG_v": "3"}


def _same_bits(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.fixture(scope="module")
def shipped():
    model = CLIPModel.from_pretrained(SHIPPED)
    model.set_train(False)
    return model


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((5, 3, 32, 32)).astype(np.float32)
    ids = tokenize(["a red circle", "a small blue star on a grey background", "heart", "x", "two rings"],
                   context_length=32)
    return images, ids


@pytest.fixture(scope="module")
def ours(shipped, inputs):
    images, ids = inputs
    return encode_images(shipped, images, batch_size=5), encode_token_ids(shipped, ids, batch_size=5)


# ----------------------------------------------------------------------------- the way back


def test_inverted_tables_undo_the_import_tables():
    from ms_clip import convert

    inverse = invert_rules(convert._HF_RENAMES)
    assert ("^transformer\\.resblocks\\.(\\d+)\\.", "text_model.encoder.layers.\\1.") in inverse
    assert ("^visual\\.ln_pre\\.", "vision_model.pre_layrnorm.") in inverse
    with pytest.raises(ValueError, match="only rules anchored"):
        invert_rules([("foo", "bar")])
    with pytest.raises(ValueError, match="cannot invert"):
        invert_rules([("^a.*b$", "c")])


@pytest.mark.parametrize("target", ["hf", "open_clip.safetensors", "open_clip_dir", "open_clip.pt", "state_dict.pt"])
def test_clip_round_trip_is_bit_identical(tmp_path, target):
    """ms_clip .ckpt -> PyTorch files -> convert_weight -> .ckpt: every tensor the same bits."""
    fmt = target.split(".")[0].replace("_dir", "")
    out = str(tmp_path / target)
    result = export_torch(SHIPPED, out, fmt=fmt)
    source = out + "/open_clip_model.safetensors" if target == "open_clip_dir" else out
    back = convert_weight(source, str(tmp_path / "back.ckpt"))
    original = read_checkpoint(loader.resolve(SHIPPED).weights)
    _same_bits(read_checkpoint(back.path), original)
    packed = sum(name.endswith((".in_proj_weight", ".in_proj_bias")) for name in original)
    assert result.num_tensors == len(original) + (2 * packed if fmt == "hf" else 0)  # HF: q, k, v separately


def test_chinese_clip_round_trip_through_hf_folder(tmp_path):
    config = loader.load_config("chinese_clip_tiny")
    model = loader.create_model(config)
    # Random init leaves LayerNorms at 1/0 and biases at 0: make every tensor distinct.
    rng = np.random.default_rng(3)
    for p in model.get_parameters():
        p.set_data(Tensor(p.asnumpy() + 0.05 * rng.standard_normal(p.shape).astype(np.float32)))
    path = model.save_pretrained(str(tmp_path / "ours"))
    result = export_torch(str(tmp_path / "ours"), str(tmp_path / "hf"), fmt="hf")
    assert result.hf_class == "ChineseCLIPModel"
    assert json.load(open(tmp_path / "hf" / "config.json"))["architectures"] == ["ChineseCLIPModel"]
    _same_bits(read_source(str(tmp_path / "hf")).tensors, read_checkpoint(path))


def test_open_clip_loads_the_export_and_matches(tmp_path, shipped, inputs, ours):
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    images, ids = inputs
    file_result = export_torch(shipped, str(tmp_path / "tiny.safetensors"))
    export_torch(shipped, str(tmp_path / "dir"), fmt="open_clip")
    assert "add_model_config" in file_result.load_hint
    open_clip.add_model_config(str(tmp_path / "tiny.json"))
    for model in (open_clip.create_model("tiny", pretrained=str(tmp_path / "tiny.safetensors")),
                  open_clip.create_model(f"local-dir:{tmp_path / 'dir'}")):
        model.eval()
        with torch.no_grad():
            image = model.encode_image(torch.from_numpy(images)).numpy()
            text = model.encode_text(torch.from_numpy(ids.astype(np.int64))).numpy()
        assert np.abs(image - ours[0]).max() <= 1e-4
        assert np.abs(text - ours[1]).max() <= 1e-4
        assert float(model.logit_scale.detach()) == float(shipped.logit_scale.asnumpy())


def test_hf_clip_model_loads_the_export_and_matches(tmp_path, shipped, inputs, ours):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    images, ids = inputs
    export_torch(shipped, str(tmp_path / "hf"), fmt="hf")
    model = transformers.CLIPModel.from_pretrained(str(tmp_path / "hf")).eval()
    with torch.no_grad():
        image = model.get_image_features(pixel_values=torch.from_numpy(images))
        text = model.get_text_features(input_ids=torch.from_numpy(ids.astype(np.int64)))
    image, text = getattr(image, "pooler_output", image), getattr(text, "pooler_output", text)
    assert np.abs(image.numpy() - ours[0]).max() <= 1e-4
    assert np.abs(text.numpy() - ours[1]).max() <= 1e-4


def test_hf_chinese_clip_model_loads_the_export_and_matches(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = loader.create_model("chinese_clip_tiny")
    model.set_train(False)
    export_torch(model, str(tmp_path / "hf"), fmt="hf")
    hf = transformers.ChineseCLIPModel.from_pretrained(str(tmp_path / "hf")).eval()
    rng = np.random.default_rng(1)
    size, length = model.config.vision_config.image_size, model.config.context_length
    images = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    ids = np.zeros((2, length), np.int32)
    ids[:, 0], ids[:, 1:6], ids[:, 6] = 101, rng.integers(200, 5000, (2, 5)), 102
    ids[1, 3:] = 0
    ids[1, 3] = 102
    ids_t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        image = hf.get_image_features(pixel_values=torch.from_numpy(images))
        text = hf.get_text_features(input_ids=ids_t, attention_mask=(ids_t != 0).long())  # cn_clip's mask
    image, text = getattr(image, "pooler_output", image), getattr(text, "pooler_output", text)
    assert np.abs(image.numpy() - encode_images(model, images)).max() <= 1e-4
    assert np.abs(text.numpy() - encode_token_ids(model, ids)).max() <= 1e-4


def test_reverse_cli(tmp_path):
    proc = subprocess.run([sys.executable, CONVERT_CLI, "--reverse", "--mindspore_path", SHIPPED,
                           "--torch_path", str(tmp_path / "hf"), "--format", "hf"],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "load with: transformers.CLIPModel.from_pretrained(" in proc.stdout
    assert os.path.isfile(tmp_path / "hf" / "model.safetensors")
    # Arguments swapped (the output is a .ckpt): one line, no traceback.
    proc = subprocess.run([sys.executable, CONVERT_CLI, "--reverse", "--mindspore_path", SHIPPED,
                           "--torch_path", str(tmp_path / "x.ckpt")], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the output must be a .safetensors/.pt/.pth/.bin file or a folder" in proc.stderr


def test_export_errors_name_the_problem(tmp_path):
    chinese = loader.load_config("chinese_clip_tiny")
    with pytest.raises(TorchExportError, match="open_clip has no ChineseCLIPConfig"):
        from ms_clip.export_torch import open_clip_model_config

        open_clip_model_config(chinese)
    with pytest.raises(TorchExportError, match="fmt='hf' writes a folder"):
        export_torch(SHIPPED, str(tmp_path / "x.safetensors"), fmt="hf")
    with pytest.raises(TorchExportError, match="unknown export format"):
        export_torch(SHIPPED, str(tmp_path / "x"), fmt="tf")
    # An unknown tensor cannot be renamed silently.
    config = loader.load_config(SHIPPED)
    tensors = dict(read_checkpoint(loader.resolve(SHIPPED).weights))
    tensors["visual.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(TorchExportError, match=r"no HF CLIPModel name: \['visual.extra.weight'\]"):
        to_hf_state_dict(config, tensors)


# ----------------------------------------------------------------------------- deployment


@pytest.fixture(scope="module")
def mindir_static(shipped, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mindir_static"))
    export_mindir(shipped, out, batch_size=4)
    return out


def test_mindir_static_batch_reload_equals_ms_clip(mindir_static, shipped, inputs):
    images, ids = inputs
    deployed = DeployedModel(mindir_static)
    assert deployed.batch_size == 4
    for name in ("image_encoder.mindir", "text_encoder.mindir", "preprocessor_config.json", "tokenizer_config.json",
                 "bpe_simple_vocab_16e6.txt.gz", "deploy_config.json"):
        assert os.path.isfile(os.path.join(mindir_static, name)), name
    # Same batch size on both sides: the same graph maths, so equal (≤ 1e-5 is the contract).
    assert np.abs(deployed.encode_images(images) - encode_images(shipped, images, batch_size=4)).max() <= 1e-5
    assert np.abs(deployed.encode_token_ids(ids) - encode_token_ids(shipped, ids, batch_size=4)).max() <= 1e-5
    assert np.abs(deployed.encode_texts(["a red circle"]) - encode_token_ids(shipped, ids[:1])).max() <= 1e-5
    preprocess = json.load(open(os.path.join(mindir_static, "preprocessor_config.json")))
    assert preprocess["image_size"] == 32 and preprocess["resize"] == "shortest_side_then_center_crop"
    with pytest.raises(ExportError, match=r"expected \[N, 3, 32, 32\]"):
        deployed.encode_images(images[:, :, :16])


def test_run_mode_export_dynamic_batch_reload_equals_ms_clip(tmp_path, shipped, inputs):
    """run_mindformer.py --run_mode export with a dynamic batch axis; the graph takes any batch size."""
    images, ids = inputs
    out = tmp_path / "deploy"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "run_mindformer.py"),
                           "--config", os.path.join(REPO, "configs/clip/run_clip_tiny_shapes_zero_shot_demo.yaml"),
                           "--run_mode", "export", "--load_checkpoint", SHIPPED, "--batch_size", "2",
                           "--output_dir", str(out), "--options", "export.dynamic_batch=True"],
                          capture_output=True, text=True, env=ENV, timeout=900, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    deployed = DeployedModel(str(out))
    assert deployed.batch_size is None
    for n in (1, 3, 5):
        assert deployed.encode_images(images[:n]).shape == (n, 64)
        assert np.abs(deployed.encode_images(images[:n]) - encode_images(shipped, images[:n], batch_size=n)).max() <= 1e-5
        assert np.abs(deployed.encode_token_ids(ids[:n]) - encode_token_ids(shipped, ids[:n], batch_size=n)).max() <= 1e-5


def test_onnx_export_runs_in_onnxruntime(tmp_path, shipped, inputs):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    images, ids = inputs
    export_mindir(shipped, str(tmp_path), batch_size=4, file_format="ONNX")
    for name in ("image_encoder.onnx", "text_encoder.onnx"):
        onnx.checker.check_model(onnx.load(str(tmp_path / name)))
    deployed = DeployedModel(str(tmp_path))
    assert np.abs(deployed.encode_images(images) - encode_images(shipped, images, batch_size=4)).max() <= 1e-4
    assert np.abs(deployed.encode_token_ids(ids) - encode_token_ids(shipped, ids, batch_size=4)).max() <= 1e-4
    # MindSpore 2.10's ONNX exporter refuses dynamic shapes: said before anything is compiled.
    with pytest.raises(ExportError, match="does not support dynamic shapes.*export_onnx_via_torch"):
        export_mindir(shipped, str(tmp_path / "dyn"), batch_size=4, dynamic_batch=True, file_format="ONNX")


@pytest.mark.parametrize("family", ["clip", "chinese_clip"])
def test_onnx_with_dynamic_batch_through_pytorch(tmp_path, shipped, inputs, family):
    """The way back to a dynamic-batch ONNX graph: ms_clip -> HF -> torch.onnx.export -> onnxruntime."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("transformers")
    from ms_clip.export import export_onnx_via_torch

    if family == "clip":
        model, (images, ids) = shipped, inputs
    else:
        model = loader.create_model("chinese_clip_tiny")
        model.set_train(False)
        rng = np.random.default_rng(2)
        size, length = model.config.vision_config.image_size, model.config.context_length
        images = rng.standard_normal((3, 3, size, size)).astype(np.float32)
        ids = np.zeros((3, length), np.int32)
        ids[:, 0], ids[:, 1:5], ids[:, 5] = 101, rng.integers(200, 5000, (3, 4)), 102
    result = export_onnx_via_torch(model, str(tmp_path))
    deployed = DeployedModel(str(tmp_path))
    assert result.batch_size is None and deployed.batch_size is None
    for n in (1, len(images)):
        assert np.abs(deployed.encode_images(images[:n]) - encode_images(model, images[:n])).max() <= 1e-4
        assert np.abs(deployed.encode_token_ids(ids[:n]) - encode_token_ids(model, ids[:n])).max() <= 1e-4


def test_export_argument_errors(tmp_path, shipped):
    with pytest.raises(ExportError, match="batch_size must be a positive integer"):
        export_mindir(shipped, str(tmp_path), batch_size=0)
    with pytest.raises(ExportError, match="file_format must be one of"):
        export_mindir(shipped, str(tmp_path), batch_size=1, file_format="TFLITE")
    with pytest.raises(ExportError, match="multiple of the patch size 4"):
        export_mindir(shipped, str(tmp_path), batch_size=1, image_size=30)
    with pytest.raises(ExportError, match="not an ms_clip export folder"):
        DeployedModel(str(tmp_path))


def test_position_table_resampling():
    rng = np.random.default_rng(0)
    pos = rng.standard_normal((1 + 8 * 8, 5)).astype(np.float32)
    same = _resize_grid(pos, 8)
    np.testing.assert_allclose(same, pos, atol=1e-6)  # bicubic at the same size is the identity
    bigger = _resize_grid(pos, 12)
    assert bigger.shape == (1 + 12 * 12, 5) and np.array_equal(bigger[0], pos[0])  # class row kept


# ----------------------------------------------------------------------------- missing extras


def test_missing_optional_packages_name_their_extra(tmp_path, mindir_static):
    """Without torch / onnxruntime: the runtime still imports and exports; the features that need them say
    which extra to install, in one line."""
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    config = json.load(open(os.path.join(mindir_static, "deploy_config.json")))
    config["image_encoder"]["file"] = "image_encoder.onnx"
    (onnx_dir / "deploy_config.json").write_text(json.dumps(config))
    (onnx_dir / "image_encoder.onnx").write_bytes(b"not used")
    code = ("import sys\n"
            "sys.modules['torch'] = None; sys.modules['onnxruntime'] = None  # any import of them now fails\n"
            "import ms_clip, ms_clip.export, ms_clip.export_torch\n"
            "from ms_clip.export_torch import export_torch\n"
            f"print(export_torch({SHIPPED!r}, {str(tmp_path / 'hf')!r}, fmt='hf').num_tensors)\n"
            "for call in (lambda: export_torch('clip_tiny_shapes', " + repr(str(tmp_path / 'm.pt')) + "),\n"
            "             lambda: ms_clip.export.DeployedModel(" + repr(str(onnx_dir)) + ")):\n"
            "    try:\n"
            "        call()\n"
            "    except ms_clip.MsClipError as err:\n"
            "        print(err)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "94"  # 74 tensors, 20 of them q/k/v packs split in three
    assert "writing a .pt/.bin file needs torch (pip install 'ms_clip[convert]')" in lines[1]
    assert "needs onnxruntime (pip install 'ms_clip[deploy]')" in lines[2]
    assert len(lines) == 3
