"""Config loading: strict fields, typed overrides, and every shipped recipe loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from plmkit import config as C
from plmkit.cli import VERBS, resolve
from plmkit.runtime.errors import UserError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_overrides_fill_nested_fields_with_types() -> None:
    cfg = C.load_config(C.PretrainConfig, None, ["train.lr=3e-4", "model.num_layers=4",
                                                 "objective.nsp=false", "init=some/dir"])
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)
    assert cfg.model.num_layers == 4
    assert cfg.objective.nsp is False
    assert cfg.init == "some/dir"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.learning_rate=1", "unknown field 'train.learning_rate'"),
        ("model.num_layers=two", "config model.num_layers: expected int"),
        ("objective.nsp=3", "config objective.nsp: expected true or false"),
        ("train=5", "config train: expected a mapping"),
        ("lr", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_field(override: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        C.load_config(C.PretrainConfig, None, [override])


def test_recipe_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        resolve("pretrain", [str(bad)])
    with pytest.raises(UserError, match="missing.yaml: config file not found"):
        resolve("pretrain", [str(tmp_path / "missing.yaml")])


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_recipe_loads_for_every_verb(recipe: Path) -> None:
    sections = set(C.read_yaml(recipe))
    assert sections <= set(VERBS), f"{recipe.name}: unknown sections {sections - set(VERBS)}"
    for verb in sections:
        cfg = resolve(verb, [str(recipe)])
        assert isinstance(cfg, VERBS[verb][0])


def test_demo_recipe_matches_built_in_defaults() -> None:
    recipe = next(r for r in RECIPES if r.name == "demo-zh.yaml")
    assert resolve("demo", [str(recipe)]) == C.DemoConfig()


def test_an_override_keeps_the_stage_defaults_of_its_section() -> None:
    """Regression: `train.lr=…` used to rebuild `train` from TrainConfig(), losing finetune's
    own defaults (max_steps=0 → epochs), and a demo override reset the demo's model shape."""
    cfg = C.load_config(C.FinetuneConfig, None, ["train.lr=3e-4"])
    assert cfg.train.lr == 3e-4
    assert cfg.train.max_steps == C.FinetuneConfig().train.max_steps == 0
    demo = C.load_config(C.DemoConfig, None, ["pretrain.train.max_time_s=60"])
    assert demo.pretrain.train.max_time_s == 60.0
    assert demo.pretrain.model == C.DemoConfig().pretrain.model
    assert demo.pretrain.train.lr == C.DemoConfig().pretrain.train.lr


def test_strings_numbers_and_yaml_oddities_coerce_sensibly() -> None:
    cfg = C.load_config(C.FinetuneConfig, {"train": {"lr": "3e-4"}}, ["labels=[0,1]", "table.text_column=0"])
    assert cfg.train.lr == 3e-4
    assert cfg.labels == ["0", "1"]
    assert cfg.table.text_column == "0"
    predict = C.load_config(C.PredictConfig, None, ["text=a: b: c"])
    assert predict.text == ["a: b: c"]


def test_a_repeated_key_fills_a_list_and_a_repeated_scalar_keeps_the_last() -> None:
    cfg = C.load_config(C.PredictConfig, None, ["text=first", "text=second", "text=3"])
    assert cfg.text == ["first", "second", "3"]
    cfg = C.load_config(C.PretrainConfig, None, ["train.lr=1e-3", "train.lr=2e-3"])
    assert cfg.train.lr == 2e-3
    cfg = C.load_config(C.FinetuneConfig, None, ["labels=neg", "labels=pos"])
    assert cfg.labels == ["neg", "pos"]
    assert C.load_config(C.PredictConfig, None, ["text= "]).text == [" "]  # blank stays text
    cfg = C.load_config(C.PretrainConfig, None, ["train.max_steps=10", "train.max_steps=20"])
    assert cfg.train.max_steps == 20


def test_command_line_bytes_that_are_not_utf8_name_the_key() -> None:
    raw = b"A dog \xff runs".decode("utf-8", "surrogateescape")  # how argv carries them
    with pytest.raises(UserError, match=r"override 'text': not valid UTF-8 \(byte 0xff at character 7\)"):
        C.load_config(C.PredictConfig, None, [f"text={raw}"])


def test_text_fields_take_the_command_line_as_written() -> None:
    """YAML would drop a comment (`#5`), read `yes` as true and `1e3` as a number."""
    predict = C.load_config(C.PredictConfig, None, [
        "question=Which item? #5", "context=yes", "text=Item #5", "text=1e3", "text=a: b"])
    assert predict.question == ["Which item? #5"] and predict.context == ["yes"]
    assert predict.text == ["Item #5", "1e3", "a: b"]
    tok = C.load_config(C.TokenizerStageConfig, None, ["inputs=[a.txt, b/]", "output=out #1"])
    assert tok.inputs == ["a.txt", "b/"] and tok.output == "out #1"
    cfg = C.load_config(C.PretrainConfig, None, ["init=null", "train.lr=1e-3", "objective.nsp=no"])
    assert cfg.init is None and cfg.train.lr == 1e-3 and cfg.objective.nsp is False
    assert isinstance(C.dump_yaml(predict), str)
    suite = C.load_config(C.SuiteConfig, None, ["override.train.max_steps=5", "defaults.labels=[a, b]"])
    assert suite.override == {"train": {"max_steps": 5}} and suite.defaults == {"labels": ["a", "b"]}
    assert "max_steps: 5" in C.dump_yaml(suite)  # plain data, not the command line's strings
