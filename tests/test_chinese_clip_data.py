"""Chinese-CLIP's data formats, bad rows, LMDB, retrieval equal to cn_clip's evaluation, and the CLI run.

The datasets are written here in Chinese-CLIP's download format ({split}_imgs.tsv + {split}_texts.jsonl);
the LMDB folders are built by cn_clip's own ``build_lmdb_dataset.py`` (the reference writer), and the
retrieval numbers are compared with cn_clip's own evaluation scripts run on the same features.
"""
from __future__ import annotations

import base64
import io
import json
import os
import pickle
import runpy
import sys

import numpy as np
import pytest
from PIL import Image

from ms_clip.data.captions import DataError
from ms_clip.data.chinese_clip import (ChineseCLIPRecords, decode_base64_image, detect_format, preprocess_text,
                                       read_chinese_clip_split, write_chinese_clip_split)
from ms_clip.eval.retrieval import multi_positive_chance, multi_positive_metrics, retrieval_metrics

lmdb = pytest.importorskip("lmdb")


def _image(seed: int, size: int = 12) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _world(root: str, split: str = "train"):
    """5 images (ids not in file order), 6 texts; text 2 names two images, image 1004 has no text."""
    ids = [1003, 1001, 1002, 1004, 1000]
    images = {i: _image(i) for i in ids}
    texts = [(7, "一只红色的圆形", [1001]), (8, "蓝色的“方块”", [1002]), (9, "两张图：圆和方", [1001, 1002]),
             (10, "绿色三角形", [1003]), (11, "黄色的星星", [1000]), (12, "红色圆形的照片", [1001])]
    write_chinese_clip_split(root, split, images, texts)
    return images, texts


def _run_cn_clip_script(module: str, argv, monkeypatch) -> None:
    """Run a cn_clip script in this process (its __main__ block, unchanged) on the CPU."""
    import torch

    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self, raising=False)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    runpy.run_module(module, run_name="__main__")


# --------------------------------------------------------------------------- formats


def test_tsv_jsonl_roundtrip_pairs_and_eval_records(tmp_path):
    images, texts = _world(str(tmp_path))
    assert detect_format(str(tmp_path), "train") == "tsv"
    split = read_chinese_clip_split(str(tmp_path), "train")
    assert [t.text_id for t in split.texts] == [7, 8, 9, 10, 11, 12]
    assert split.texts[2].image_ids == (1001, 1002)
    assert split.store.ids == [1003, 1001, 1002, 1004, 1000]  # file order
    for image_id, image in images.items():  # decoded in memory, pixel-identical
        assert np.array_equal(np.asarray(split.store.load(image_id)), np.asarray(image))

    train = split.training_records()  # one record per (text, image) pair, as cn_clip's LMDB pairs
    assert isinstance(train, ChineseCLIPRecords)
    assert train.image_ids == [1001, 1002, 1001, 1002, 1003, 1000, 1001]
    assert [c[0] for c in train.captions] == ["一只红色的圆形", "蓝色的“方块”", "两张图：圆和方", "两张图：圆和方",
                                              "绿色三角形", "黄色的星星", "红色圆形的照片"]
    assert "train_imgs.tsv:2 (image_id 1001)" in train.image_paths[0]

    evaluation = split.eval_records()  # every image is a candidate, texts keep all their correct images
    assert evaluation.image_ids == [1003, 1001, 1002, 1004, 1000]
    assert evaluation.texts[2] == "两张图：圆和方"
    assert evaluation.text_images == [[1], [2], [1, 2], [0], [4], [1]]
    assert evaluation.text_ids == [7, 8, 9, 10, 11, 12]


def test_stage_aliases_and_missing_split(tmp_path):
    _world(str(tmp_path), "valid")
    assert read_chinese_clip_split(str(tmp_path), "val").split == "valid"
    with pytest.raises(DataError, match=r"no 'test' split found.*test_imgs.tsv|no 'test' split"):
        read_chinese_clip_split(str(tmp_path), "test")
    with pytest.raises(DataError, match="stage must be one of"):
        read_chinese_clip_split(str(tmp_path), "holdout")


def test_preprocess_text_is_cn_clips():
    from cn_clip.eval.data import _preprocess_text as eval_pre
    from cn_clip.training.data import _preprocess_text as train_pre

    for text in ("“你好”World", "ABC“x”", "普通文本", ""):
        assert preprocess_text(text) == eval_pre(text) == train_pre(text)


# --------------------------------------------------------------------------- bad rows


def _write(path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.mark.parametrize("row, message", [
    ("1001 no tab here\n", r"train_imgs.tsv:2: malformed row"),
    ("abc\tAAAA\n", r"train_imgs.tsv:2: image id 'abc' is not an integer"),
    ("1000\tAAAA\n", r"train_imgs.tsv:2: duplicate image id 1000 \(first on line 1\)"),
    ("1001\t\n", r"train_imgs.tsv:2: image 1001 has no base64 data"),
])
def test_bad_tsv_rows_name_file_and_line(tmp_path, row, message):
    good = base64.b64encode(b"x").decode()
    _write(tmp_path / "train_imgs.tsv", f"1000\t{good}\n{row}")
    _write(tmp_path / "train_texts.jsonl", '{"text_id": 1, "text": "猫", "image_ids": [1000]}\n')
    with pytest.raises(DataError, match=message):
        read_chinese_clip_split(str(tmp_path), "train")


@pytest.mark.parametrize("line, message", [
    ("{not json", r"train_texts.jsonl:2: not a JSON object"),
    ('["a list"]', r"train_texts.jsonl:2: expected a JSON object per line"),
    ('{"text_id": 2, "text": "狗"}', r"train_texts.jsonl:2: missing key\(s\) \['image_ids'\]"),
    ('{"text_id": "2", "text": "狗", "image_ids": [1000]}', r"train_texts.jsonl:2: text_id '2' is not an integer"),
    ('{"text_id": 2, "text": "", "image_ids": [1000]}', r"train_texts.jsonl:2: 'text' must be a non-empty string"),
    ('{"text_id": 2, "text": "狗", "image_ids": []}', r"train_texts.jsonl:2: 'image_ids' must be a non-empty list"),
    ('{"text_id": 2, "text": "狗", "image_ids": [1.5]}', r"train_texts.jsonl:2: image id in 'image_ids' 1.5"),
    ('{"text_id": 1, "text": "狗", "image_ids": [1000]}', r"train_texts.jsonl:2: duplicate text_id 1 \(first on line 1\)"),
])
def test_bad_jsonl_rows_name_file_and_line(tmp_path, line, message):
    _write(tmp_path / "train_imgs.tsv", f"1000\t{base64.b64encode(b'x').decode()}\n")
    _write(tmp_path / "train_texts.jsonl", '{"text_id": 1, "text": "猫", "image_ids": [1000]}\n' + line + "\n")
    with pytest.raises(DataError, match=message):
        read_chinese_clip_split(str(tmp_path), "train")


def test_missing_image_id_follows_on_bad_image(tmp_path, caplog):
    _world(str(tmp_path))
    with open(tmp_path / "train_texts.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text_id": 99, "text": "不存在的图", "image_ids": [5555, 1000]}, ensure_ascii=False) + "\n")
    split = read_chinese_clip_split(str(tmp_path), "train")
    records = split.training_records("skip")  # the pair with 5555 dropped, the one with 1000 kept
    assert records.image_ids[-1] == 1000 and records.captions[-1] == ["不存在的图"]
    assert "not in" in caplog.text
    with pytest.raises(DataError, match=r"train_texts.jsonl:7: text 99 names image id 5555, which is not in"):
        split.training_records("fail")


def test_bad_base64_and_bad_image_bytes_name_the_row(tmp_path):
    good = base64.b64encode(b"not an image").decode()
    _write(tmp_path / "train_imgs.tsv", f"1000\t{good}\n1001\t***notbase64***\n")
    _write(tmp_path / "train_texts.jsonl", '{"text_id": 1, "text": "猫", "image_ids": [1000, 1001]}\n')
    split = read_chinese_clip_split(str(tmp_path), "train")  # structure is fine; images decode lazily
    with pytest.raises(DataError, match=r"train_imgs.tsv:2 \(image_id 1001\): not valid base64"):
        split.store.load(1001)
    with pytest.raises(DataError, match=r"train_imgs.tsv:1 \(image_id 1000\): .*not an image file"):
        split.store.load(1000)


def test_url_safe_base64_is_accepted():
    buffer = io.BytesIO()
    _image(3).save(buffer, format="PNG")
    data = buffer.getvalue()
    for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
        assert np.array_equal(np.asarray(decode_base64_image(encoded, "x")), np.asarray(_image(3)))


def test_pipeline_reads_images_from_the_store_with_the_bad_image_policy(tmp_path):
    from ms_clip.data.pipeline import ImageTransform, build_caption_dataset, build_image_dataset

    _world(str(tmp_path))
    with open(tmp_path / "train_imgs.tsv", "a", encoding="ascii") as f:
        f.write("2000\t@@@@\n")  # a corrupt image that a text names
    with open(tmp_path / "train_texts.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text_id": 50, "text": "坏图", "image_ids": [2000]}, ensure_ascii=False) + "\n")
    split = read_chinese_clip_split(str(tmp_path), "train")
    records = split.training_records()

    def tokenizer(texts, context_length=52):  # stands in for the model's tokenizer
        return np.array([[101] + [len(t)] + [102] + [0] * (context_length - 3) for t in texts], np.int32)

    transform = ImageTransform(8, resize="squash")
    dataset, source = build_caption_dataset(records, 4, transform, shuffle=False, context_length=52,
                                            tokenizer=tokenizer, num_parallel_workers=1, drop_remainder=False)
    batches = list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert sum(len(b[0]) for b in batches) == len(records) == 8
    assert batches[0][0].shape[1:] == (3, 8, 8) and batches[0][1].shape[1] == 52
    assert len(source.bad.files) == 1 and "image_id 2000" in next(iter(source.bad.files))

    evaluation = split.eval_records()
    dataset, _ = build_image_dataset(evaluation, 4, transform, num_parallel_workers=1, on_bad_image="skip")
    ok = np.concatenate([b[1] for b in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)])
    assert ok.tolist() == [1, 1, 1, 1, 1, 0]
    dataset, _ = build_image_dataset(evaluation, 4, transform, num_parallel_workers=1, on_bad_image="fail")
    with pytest.raises(DataError, match=r"train_imgs.tsv:6 \(image_id 2000\): not valid base64"):
        list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))


def test_squash_transform_matches_cn_clips(tmp_path):
    """Chinese-CLIP's eval transform: Resize((R, R), bicubic) -> RGB -> ToTensor -> Normalize."""
    from cn_clip.eval.data import EvalImgDataset

    from ms_clip.data.pipeline import ImageTransform, image_transform_from_config

    reference = EvalImgDataset.__new__(EvalImgDataset)._build_transform(24)
    image = _image(5, size=40).crop((0, 0, 40, 31)).convert("RGBA")
    ours = ImageTransform(24, resize="squash")(image)
    assert np.abs(ours - reference(image).numpy()).max() == 0.0
    parsed = image_transform_from_config([{"type": "Resize", "size": [24, 24]}, {"type": "ToTensor"}], 24, "t")
    assert parsed.resize == "squash"
    with pytest.raises(DataError, match=r"two equal numbers"):
        image_transform_from_config([{"type": "Resize", "size": [24, 20]}], 24, "t")


# --------------------------------------------------------------------------- LMDB


def _build_lmdb(data_dir: str, splits: str, monkeypatch) -> None:
    """cn_clip's own writer, unchanged."""
    _run_cn_clip_script("cn_clip.preprocess.build_lmdb_dataset", ["--data_dir", data_dir, "--splits", splits],
                        monkeypatch)


def test_lmdb_from_cn_clips_writer_equals_tsv(tmp_path, monkeypatch):
    images, _ = _world(str(tmp_path))
    _build_lmdb(str(tmp_path), "train", monkeypatch)
    tsv = read_chinese_clip_split(str(tmp_path), "train", "tsv")
    lm = read_chinese_clip_split(str(tmp_path), "train", "lmdb")
    assert [(t.text_id, t.text, t.image_ids) for t in lm.texts] == [(t.text_id, t.text, t.image_ids) for t in tsv.texts]
    assert lm.store.ids == sorted(images, key=lambda i: str(i).encode())  # LMDB key order, as cn_clip's eval reads
    for image_id in images:
        assert np.array_equal(np.asarray(lm.store.load(image_id)), np.asarray(images[image_id]))
    assert lm.training_records().image_ids == tsv.training_records().image_ids
    # Auto-detection falls back to LMDB when the TSV/JSONL are gone; the split folder itself works too.
    os.remove(tmp_path / "train_imgs.tsv")
    assert detect_format(str(tmp_path), "train") == "lmdb"
    assert read_chinese_clip_split(str(tmp_path / "lmdb" / "train"), "train").store.ids == lm.store.ids
    # The store pickles without its environment (python_multiprocessing workers reopen it).
    copy = pickle.loads(pickle.dumps(lm.store))
    assert np.array_equal(np.asarray(copy.load(1000)), np.asarray(images[1000]))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_lmdb_pairs_are_unpickled_restrictedly(tmp_path, monkeypatch):
    _world(str(tmp_path))
    _build_lmdb(str(tmp_path), "train", monkeypatch)
    env = lmdb.open(str(tmp_path / "lmdb" / "train" / "pairs"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"3", pickle.dumps(_Evil()))
    env.close()
    with pytest.raises(DataError, match=r"pairs key '3': refused to unpickle the global 'posix.system'"):
        read_chinese_clip_split(str(tmp_path), "train", "lmdb")


def test_lmdb_bad_counts_and_values(tmp_path, monkeypatch):
    _world(str(tmp_path))
    _build_lmdb(str(tmp_path), "train", monkeypatch)
    pairs = str(tmp_path / "lmdb" / "train" / "pairs")
    env = lmdb.open(pairs, map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"2", pickle.dumps(("1001", 9)))
    env.close()
    with pytest.raises(DataError, match=r"pairs key '2': expected a tuple \(image_id, text_id, text\)"):
        read_chinese_clip_split(str(tmp_path), "train", "lmdb")
    env = lmdb.open(str(tmp_path / "lmdb" / "train" / "imgs"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"num_images", b"9")
    env.close()
    with pytest.raises(DataError, match=r"imgs: 'num_images' says 9 images but the database holds 5"):
        read_chinese_clip_split(str(tmp_path), "train", "lmdb")


# --------------------------------------------------------------------------- retrieval = cn_clip's evaluation


def _random_features(n_img: int, n_txt: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n_img, dim)).astype(np.float32)
    txt = rng.normal(size=(n_txt, dim)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    relation = [sorted(rng.choice(n_img, size=int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(n_txt)]
    return img, txt, relation


def _cn_clip_recall(tmp_path, img, txt, relation, image_ids, monkeypatch):
    """cn_clip's pipeline on our features: make_topk_predictions(_tr) -> transform_ir_annotation_to_tr ->
    evaluation(_tr).compute_score, on files in its formats."""
    from cn_clip.eval import evaluation, evaluation_tr

    d = tmp_path
    with open(d / "test_texts.jsonl", "w", encoding="utf-8") as f:
        for t, images in enumerate(relation):
            f.write(json.dumps({"text_id": 500 + t, "text": "x", "image_ids": [image_ids[i] for i in images]}) + "\n")
    with open(d / "img_feat.jsonl", "w") as f:
        for i, row in enumerate(img):
            f.write(json.dumps({"image_id": image_ids[i], "feature": row.tolist()}) + "\n")
    with open(d / "txt_feat.jsonl", "w") as f:
        for t, row in enumerate(txt):
            f.write(json.dumps({"text_id": 500 + t, "feature": row.tolist()}) + "\n")
    common = ["--image-feats", str(d / "img_feat.jsonl"), "--text-feats", str(d / "txt_feat.jsonl"), "--top-k", "10"]
    _run_cn_clip_script("cn_clip.eval.make_topk_predictions", common + ["--output", str(d / "pred.jsonl")],
                        monkeypatch)
    _run_cn_clip_script("cn_clip.eval.make_topk_predictions_tr", common + ["--output", str(d / "pred_tr.jsonl")],
                        monkeypatch)
    _run_cn_clip_script("cn_clip.eval.transform_ir_annotation_to_tr", ["--input", str(d / "test_texts.jsonl")],
                        monkeypatch)
    t2i = evaluation.compute_score(str(d / "test_texts.jsonl"), str(d / "pred.jsonl"))
    i2t = evaluation_tr.compute_score(str(d / "test_texts.tr.jsonl"), str(d / "pred_tr.jsonl"))
    return t2i, i2t  # each [mean recall, R@1, R@5, R@10] in percent


def test_retrieval_equals_cn_clips_evaluation(tmp_path, monkeypatch):
    img, txt, relation = _random_features(70, 160, 16, seed=3)
    # An image no text names stays a candidate (cn_clip scores every image of the split) but is no query.
    relation = [[i for i in r if i != 5] or [6] for r in relation]
    # cn_clip ranks in float32: no wrong candidate may score within 1e-6 of a correct one (rounding could
    # then reorder them), in either direction, so the comparison is exact for these features.
    scores = txt.astype(np.float64) @ img.T.astype(np.float64)
    for t, images in enumerate(relation):
        for i in images:
            assert np.delete(np.abs(scores[t] - scores[t, i]), images).min() > 1e-6
            named = [u for u, r in enumerate(relation) if i in r]
            assert np.delete(np.abs(scores[:, i] - scores[t, i]), named).min() > 1e-6
    image_ids = [10_000 + 3 * i for i in range(len(img))]
    t2i, i2t = _cn_clip_recall(tmp_path, img, txt, relation, image_ids, monkeypatch)
    ours = multi_positive_metrics(img, txt, relation)
    expected = {"text_to_image": t2i, "image_to_text": i2t}
    for direction, (mean, r1, r5, r10) in expected.items():
        assert 100 * ours[f"{direction}_R@1"] == pytest.approx(r1, abs=1e-9)
        assert 100 * ours[f"{direction}_R@5"] == pytest.approx(r5, abs=1e-9)
        assert 100 * ours[f"{direction}_R@10"] == pytest.approx(r10, abs=1e-9)
        assert 100 * ours[f"{direction}_mean_recall"] == pytest.approx(mean, abs=1e-9)
    assert ours["num_images"] == 70 and ours["num_texts"] == 160
    assert 0 < ours["text_to_image_R@10"] < 1 and 0 < ours["image_to_text_R@10"] < 1  # a real comparison


def test_multi_positive_equals_clip_benchmark_with_one_image_per_text():
    img, txt, _ = _random_features(30, 90, 8, seed=1)
    owners = np.random.default_rng(2).integers(0, 30, 90)
    a = multi_positive_metrics(img, txt, [[o] for o in owners])
    b = retrieval_metrics(img, txt, owners)
    for key in b:
        assert a[key] == pytest.approx(b[key], abs=1e-12), key


def test_multi_positive_ties_never_help_and_chance():
    relation = [[0, 1], [2], [3], [1]]
    same = multi_positive_metrics(np.ones((5, 4)), np.ones((4, 4)), relation)
    chance = multi_positive_chance(5, relation)
    for key in chance:
        assert same[key] == pytest.approx(chance[key], abs=1e-12), key
    assert multi_positive_metrics(np.ones((5, 4)), np.ones((4, 4)), relation, ties="pessimistic")[
        "text_to_image_R@1"] == 0.0


# --------------------------------------------------------------------------- zero-shot with Chinese prompts


def test_chinese_templates_are_cn_clips():
    from cn_clip.eval import cvinw_zeroshot_templates as reference

    from ms_clip.eval.templates import (CHINESE_CLIP_CIFAR100_TEMPLATES, CHINESE_CLIP_TEMPLATES, TEMPLATE_SETS,
                                        resolve_templates)

    assert CHINESE_CLIP_TEMPLATES == tuple(f("{}") for f in reference.openai_templates)
    assert CHINESE_CLIP_CIFAR100_TEMPLATES == tuple(f("{}") for f in reference.cifar100_templates)
    assert resolve_templates("chinese_clip_simple") == tuple(f("{}") for f in reference.normal_templates)
    assert TEMPLATE_SETS["chinese_clip"] is CHINESE_CLIP_TEMPLATES


def test_chinese_classnames(tmp_path):
    from ms_clip.data.chinese_classnames import CIFAR10_CLASSNAMES_ZH, chinese_classnames, read_label_cn
    from ms_clip.eval.templates import CIFAR10_CLASSNAMES, CIFAR100_CLASSNAMES

    assert chinese_classnames(CIFAR10_CLASSNAMES)[:2] == ["飞机", "汽车"]  # as Chinese-CLIP's docs show
    assert len(set(chinese_classnames(CIFAR100_CLASSNAMES))) == 100
    assert chinese_classnames(["circle", "star"]) is None  # other datasets keep their names
    _write(tmp_path / "label_cn.txt", "\n".join(["甲", "乙"]) + "\n")
    assert chinese_classnames(["a", "b"], str(tmp_path)) == ["甲", "乙"]  # the dataset's own label_cn.txt wins
    with pytest.raises(DataError, match=r"label_cn.txt: 2 class names for a dataset of 3 classes"):
        read_label_cn(str(tmp_path), 3)
    assert list(CIFAR10_CLASSNAMES_ZH) == chinese_classnames(CIFAR10_CLASSNAMES)


def test_pipeline_picks_the_models_tokenizer_templates_and_preprocessing():
    from cn_clip.clip import tokenize as cn_tokenize
    from cn_clip.eval.data import EvalImgDataset, _preprocess_text

    from ms_clip import pipeline
    from ms_clip.eval.templates import CHINESE_CLIP_TEMPLATES
    from ms_clip.features import encode_token_ids, l2_normalize
    from ms_clip.loader import create_model

    model = create_model("chinese_clip_tiny")
    classifier = pipeline("zero_shot_image_classification", model=model, candidate_labels=["猫", "狗"])
    assert classifier.hypothesis_template == CHINESE_CLIP_TEMPLATES
    # Class embeddings from cn_clip's own tokenization of its normalised prompts (zeroshot_evaluation.py).
    weights = classifier.classifier(["猫", "“狗”"], CHINESE_CLIP_TEMPLATES[:3])
    prompts = [_preprocess_text(t.format(c)) for c in ["猫", "“狗”"] for t in CHINESE_CLIP_TEMPLATES[:3]]
    features = l2_normalize(encode_token_ids(model, cn_tokenize(prompts, context_length=52).numpy()))
    expected = l2_normalize(features.reshape(2, 3, -1).mean(axis=1)).T
    assert np.abs(weights - expected).max() < 1e-6
    # Pixels: Chinese-CLIP's squash resize, not CLIP's center crop.
    image = _image(9, size=50).crop((0, 0, 50, 37))
    reference = EvalImgDataset.__new__(EvalImgDataset)._build_transform(32)(image).numpy()
    assert np.abs(classifier.preprocess(image) - reference).max() == 0.0
    result = classifier([image, image], top_k=1)
    assert result[0][0]["label"] in ("猫", "狗") and result[0][0]["label"] == result[1][0]["label"]
    # (rows of one batch may round differently by a float32 ulp on CPU)
    assert result[0][0]["score"] == pytest.approx(result[1][0]["score"], abs=1e-6)


# --------------------------------------------------------------------------- the CLI, end to end

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "configs", "clip", "run_chinese_clip_tiny_shapes_pretrain.yaml")
CLI_EPOCHS = 6
N_TRAIN, N_TEST = 240, 60  # 480 (text, image) pairs: 15 steps of 32 per epoch

def _cli(tmp_path, *args, timeout=900):
    import subprocess

    env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_mindformer.py"), "--config", TINY_CONFIG, *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def cn_world(tmp_path_factory):
    from ms_clip.demo.chinese_shapes import write_chinese_shapes

    return write_chinese_shapes(str(tmp_path_factory.mktemp("cn_shapes")), n_train=N_TRAIN, n_test=N_TEST,
                                splits=("train", "test"))


def test_tiny_chinese_clip_trained_from_scratch_through_the_cli(cn_world, tmp_path):
    out = tmp_path / "run"
    proc = _cli(tmp_path, "--run_mode", "train", "--train_dataset_dir", cn_world, "--eval_dataset_dir", cn_world,
                "--output_dir", str(out), "--epochs", str(CLI_EPOCHS),
                "--options", f"eval_epoch_interval={CLI_EPOCHS}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "metrics.jsonl") as f:
        evals = [r for r in map(json.loads, f) if r["type"] == "eval"]
    before, after = evals[0], evals[-1]
    test = read_chinese_clip_split(cn_world, "test").eval_records()
    chance = multi_positive_chance(len(test), test.text_images)["mean_recall"]
    several = sum(len(images) > 1 for images in test.text_images)
    message = (f"Chinese shapes test split ({after['num_images']} images, {after['num_texts']} texts, {several} "
               f"with several images): mean recall chance {100 * chance:.1f}%, before training "
               f"{100 * before['mean_recall']:.1f}%, after {after['step']} steps {100 * after['mean_recall']:.1f}% "
               f"(t->i R@1 {100 * after['text_to_image_R@1']:.1f}%, i->t R@1 {100 * after['image_to_text_R@1']:.1f}%)")
    print(message)
    assert before["step"] == 0 and after["step"] == CLI_EPOCHS * (2 * N_TRAIN // 32)
    assert before["mean_recall"] < 2 * chance, message
    assert after["mean_recall"] > 3 * chance, message

    # --run_mode eval on the checkpoint reproduces the numbers.
    ckpt = json.loads(proc.stdout.strip().splitlines()[-1])["checkpoint"]
    proc = _cli(tmp_path, "--run_mode", "eval", "--eval_dataset_dir", cn_world, "--load_checkpoint", ckpt,
                "--output_dir", str(tmp_path / "eval"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "eval" / "retrieval_results.json") as f:
        again = json.load(f)
    for key in ("text_to_image_R@1", "text_to_image_R@5", "image_to_text_R@10", "mean_recall"):
        assert again[key] == pytest.approx(after[key], abs=1e-12), key
    assert again["chance_mean_recall"] == pytest.approx(chance)


def test_cli_bad_row_is_one_line(cn_world, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(cn_world, data)
    with open(data / "train_texts.jsonl", "a", encoding="utf-8") as f:
        f.write('{"text_id": 1, "text": "坏"\n')
    proc = _cli(tmp_path, "--run_mode", "train", "--train_dataset_dir", str(data), "--eval_dataset_dir", str(data),
                "--output_dir", str(tmp_path / "out"), timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"train_texts.jsonl:{2 * N_TRAIN + 1}: not a JSON object" in proc.stderr.strip().splitlines()[-1]


def test_zero_shot_cifar10_evaluation_uses_chinese_names_and_templates(tmp_path):
    from ms_clip import Trainer
    from ms_clip.data.classification import write_cifar10
    from ms_clip.eval.templates import CIFAR10_CLASSNAMES, CHINESE_CLIP_TEMPLATES
    from ms_clip.loader import create_model, save_pretrained

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    folder = write_cifar10(str(tmp_path), images, [i % 10 for i in range(20)], CIFAR10_CLASSNAMES)
    weights = save_pretrained(create_model("chinese_clip_tiny"), str(tmp_path / "model"))
    config = os.path.join(ROOT, "configs", "clip", "run_chinese_clip_vit_b_16_zero_shot_cifar100.yaml")
    trainer = Trainer(args=config, model_name="chinese_clip_tiny", eval_dataset=folder)
    trainer.config.eval_dataset.data_loader.type = "Cifar10DataLoader"
    trainer.config.output_dir = str(tmp_path / "out")
    trainer.config.zero_shot.cache_class_embeddings = False
    trainer.config.eval_dataset.num_parallel_workers = 1
    result = trainer.evaluate(eval_checkpoint=weights)
    assert result["num_samples"] == 20 and result["num_templates"] == len(CHINESE_CLIP_TEMPLATES)
    with open(tmp_path / "out" / "zero_shot_metrics.json", encoding="utf-8") as f:
        written = json.load(f)
    assert written["templates"] == list(CHINESE_CLIP_TEMPLATES)
    assert [row["class_name"] for row in written["per_class"]][:3] == ["飞机", "汽车", "鸟"]


@pytest.mark.slow
def test_msrun_two_workers_equal_one_process_on_chinese_clip_data(cn_world, tmp_path):
    """2 CPU workers x batch 16 under msrun (global-batch loss) against one process x batch 32, on Chinese-CLIP's
    data format. (Measured: losses of 6 steps within 1.4e-7 relative.)"""
    import subprocess

    script = os.path.join(ROOT, "scripts", "examples", "clip_tiny_pretrain_on_flickr8k_distributed_cpu.sh")
    common = ["--do_eval", "False", "--options", "runner_config.max_steps=6", "runner_config.log_interval=1"]
    env = dict(os.environ, GLOG_v="3", PYTHON=sys.executable, CONFIG=TINY_CONFIG,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    dist = subprocess.run(["bash", script, cn_world, str(tmp_path / "dist"), "--batch_size", "16", *common],
                          capture_output=True, text=True, timeout=1200, env=env, cwd=ROOT)
    assert dist.returncode == 0, dist.stdout[-3000:] + dist.stderr[-3000:]
    single = _cli(tmp_path, "--run_mode", "train", "--device_target", "CPU", "--train_dataset_dir", cn_world,
                  "--eval_dataset_dir", cn_world, "--output_dir", str(tmp_path / "single"), "--batch_size", "32",
                  *common)
    assert single.returncode == 0, single.stderr[-3000:]

    def losses(name):
        with open(tmp_path / name / "metrics.jsonl") as f:
            return [r["loss"] for r in map(json.loads, f) if r["type"] == "train"]

    a, b = losses("dist"), losses("single")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) / abs(y) for x, y in zip(a, b)) < 1e-5
