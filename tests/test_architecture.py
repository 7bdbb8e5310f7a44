"""The shape of the house: import direction, no cycles, one loader deciding weights and architecture."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import ms_clip
from ms_clip import loader
from ms_clip.models import CLIPConfig, CLIPModel, ConfigError

PACKAGE_DIR = os.path.dirname(ms_clip.__file__)
REPO = os.path.dirname(PACKAGE_DIR)

# Layers, lowest first: a module may import only from its own layer or below (README "Where things live").
# Models are leaves: ms_clip.models.* may import nothing of ms_clip but ms_clip.models.* and ms_clip.errors.
LAYERS = [
    # processor sits with the tokenizer: models/__init__ re-exports both (MindFormers' mindformers.models names).
    ("errors", "constants", "fileio", "net", "safe_pickle", "tokenizer", "bert_tokenizer", "hf_tokenizer", "processor",
     "loss", "data.timing", "models"),
    ("weights", "torchfile", "registry", "pretrained_table", "tools"),
    ("convert",),
    ("hub",),
    ("loader", "export_torch", "features", "data", "demo", "eval", "train", "run_config", "distributed"),
    ("tasks", "pipelines", "export", "auto", "mindformer_book", "tools.register"),
    ("trainer", ""),
]
# What ms_clip.models may import besides itself and ms_clip.errors: the tokenizer and processors, which
# models/__init__ re-exports because MindFormers exported them from mindformers.models. Both are leaves
# (they import nothing of the models; their from_pretrained reaches configs through ms_clip.auto's catalog).
MODELS_MAY_IMPORT = ("ms_clip.errors", "ms_clip.tokenizer", "ms_clip.processor")


def _modules():
    out = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path[:-3], REPO).replace(os.sep, ".")
                out[module[:-len(".__init__")] if module.endswith(".__init__") else module] = path
    return out


def _imports(module: str, path: str, modules) -> set:
    """Every ms_clip module ``module`` imports, at the top or inside functions."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != module}


def _layer(module: str) -> int:
    rel = module[len("ms_clip."):] if module.startswith("ms_clip.") else ""
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if rel == name or (name and rel.startswith(name + ".")):
                if best is None or len(name) > best[1]:
                    best = (i, len(name))
    if best is None:
        raise AssertionError(f"{module} is in no layer of LAYERS: add it where it belongs")
    return best[0]


def test_models_import_nothing_above_them():
    modules = _modules()
    bad = []
    for module, path in modules.items():
        if module.startswith("ms_clip.models"):
            for dep in _imports(module, path, modules):
                if not (dep.startswith("ms_clip.models") or dep in MODELS_MAY_IMPORT):
                    bad.append(f"{module} imports {dep}")
    assert not bad, bad


def test_imports_point_down_and_have_no_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
              for m, deps in graph.items() for d in deps if _layer(d) > _layer(m)]
    assert not upward, upward
    # Cycle check (also inside a layer): depth-first search with colours.
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in graph[node]:
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node)


def test_the_graph_check_catches_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The two tests above must be able to fail: plant a models -> loader import and see it found."""
    modules = _modules()
    planted = tmp_path / "planted.py"
    planted.write_text("from ms_clip.loader import resolve\n")
    deps = _imports("ms_clip.models.planted", str(planted), modules)
    assert deps == {"ms_clip.loader"}
    assert _layer("ms_clip.loader") > _layer("ms_clip.models.planted")


def _run_config(**sections):
    config = {"load_checkpoint": "", "trainer": {"model_name": "clip_tiny"}, "model": {"model_config": None}}
    config.update(sections)
    return config


def test_registered_weights_with_another_architecture_is_one_line_naming_both():
    config = _run_config(load_checkpoint="clip_tiny_shapes")
    with pytest.raises(ConfigError) as info:
        loader.model_for_run(config, require_weights=True)
    message = str(info.value)
    assert "\n" not in message
    assert "clip_tiny_shapes" in message and "clip_tiny'" in message and "architecture mismatch" in message


def test_checkpoint_config_differs_from_run_yaml_model_config(tmp_path):
    saved = loader.create_model("clip_tiny")
    ckpt = saved.save_pretrained(str(tmp_path / "tiny"))
    other = CLIPConfig.from_pretrained("clip_tiny").to_dict()
    other["projection_dim"] = 32
    config = _run_config(load_checkpoint=ckpt, model={"model_config": other})
    with pytest.raises(ConfigError, match=r"^architecture mismatch: the weights .*model.ckpt' is clip_tiny but the run "
                                          r"config's model.model_config is \(CLIPConfig, .*projection 32\)"):
        loader.model_for_run(config)
    # Non-architecture fields of the run config apply on top of the checkpoint's architecture.
    same = CLIPConfig.from_pretrained("clip_tiny").to_dict()
    same["text_config"]["dropout"] = 0.1
    model = loader.model_for_run(_run_config(load_checkpoint=ckpt, model={"model_config": same}))
    assert model.config.text_config.dropout == 0.1


def test_config_naming_weights_loads_them_or_names_both_architectures():
    config = CLIPConfig.from_pretrained("clip_tiny_shapes")
    config.checkpoint_name_or_path = "clip_tiny_shapes"
    model = CLIPModel(config)  # MindFormers: the named weights are loaded at construction
    reference = CLIPModel.from_pretrained("clip_tiny_shapes")
    for a, b in zip(model.get_parameters(), reference.get_parameters()):
        assert (a.asnumpy() == b.asnumpy()).all(), a.name
    wrong = CLIPConfig.from_pretrained("clip_tiny")
    wrong.checkpoint_name_or_path = "clip_tiny_shapes"
    with pytest.raises(ConfigError, match=r"checkpoint_name_or_path 'clip_tiny_shapes' is clip_tiny_shapes but the "
                                          r"model's config is clip_tiny"):
        CLIPModel(wrong)


def test_setup_py_version():
    out = subprocess.run([sys.executable, "setup.py", "--version"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == ms_clip.__version__
