"""A Hugging Face model id is found in the local Hugging Face cache (a fake one in tmp_path here),
never downloaded: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; refs/main names
the snapshot; every failure is one line."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.errors import InputError
from opbsim.workloads import load_model
from opbsim.workloads.hf_cache import hub_cache_dir, is_model_id

from .test_hf_families import MISTRAL_7B

REVISION = "7231864981174d9bee8c7687c24c8344414eae6b"


@pytest.fixture(autouse=True)
def no_cache_settings(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def cache_model(hub: Path, model_id: str, config: dict, revisions=(REVISION,), main: str | None = REVISION) -> Path:
    """The layout huggingface_hub writes: the file in blobs/, linked from snapshots/<revision>/."""
    folder = hub / f"models--{model_id.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    blob = folder / "blobs" / "a1b2c3"
    blob.write_text(json.dumps(config))
    for revision in revisions:
        (folder / "snapshots" / revision).mkdir(parents=True)
        (folder / "snapshots" / revision / "config.json").symlink_to(Path("../../blobs/a1b2c3"))
    if main is not None:
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(main)
    return folder


def test_a_model_id_loads_the_config_json_refs_main_names_from_hf_hub_cache(monkeypatch, tmp_path):
    cache_model(tmp_path / "hub", "mistralai/Mistral-7B-v0.1", MISTRAL_7B)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = load_model("mistralai/Mistral-7B-v0.1")
    assert m.name == "mistralai/Mistral-7B-v0.1"
    assert m.source == str(tmp_path / "hub" / "models--mistralai--Mistral-7B-v0.1" / "snapshots" / REVISION /
                           "config.json")
    assert (m.hidden_size, m.num_layers, m.sliding_window) == (4096, 32, 4096)


@pytest.mark.parametrize("env, hub", [
    ({"HF_HUB_CACHE": "{tmp}/a", "HF_HOME": "{tmp}/b"}, "{tmp}/a"),  # HF_HUB_CACHE first
    ({"HF_HOME": "{tmp}/b"}, "{tmp}/b/hub"),
    ({"XDG_CACHE_HOME": "{tmp}/c"}, "{tmp}/c/huggingface/hub"),
    ({}, "{tmp}/home/.cache/huggingface/hub"),
])
def test_the_cache_folder_follows_the_environment_as_huggingface_hub_does(monkeypatch, tmp_path, env, hub):
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert hub_cache_dir() == Path(hub.format(tmp=tmp_path))
    cache_model(Path(hub.format(tmp=tmp_path)), "org/model", MISTRAL_7B)
    assert load_model("org/model").hidden_size == 4096


def test_without_refs_main_the_single_snapshot_is_taken(monkeypatch, tmp_path):
    cache_model(tmp_path, "org/model", MISTRAL_7B, main=None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert load_model("org/model").source.endswith(f"snapshots/{REVISION}/config.json")


def test_several_snapshots_and_no_refs_main_is_an_error_naming_them(monkeypatch, tmp_path):
    folder = cache_model(tmp_path, "org/model", MISTRAL_7B, revisions=("bbb", "aaa"), main=None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=rf"^org/model: {folder} has 2 snapshots \(aaa, bbb\) and no refs/main to "
                                         r"choose one; pass the path of the config.json you mean$"):
        load_model("org/model")


def test_a_model_id_not_in_the_cache_names_the_folder_and_says_nothing_is_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = CliRunner().invoke(cli, ["models", "show", "mistralai/Mistral-7B-v0.1"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: unknown model 'mistralai/Mistral-7B-v0.1': not a preset, a file, or in the Hugging Face cache "
        f"(looked for {tmp_path}/models--mistralai--Mistral-7B-v0.1; opbsim does not download)\n")


def test_a_cached_folder_without_a_config_json_is_an_error(monkeypatch, tmp_path):
    folder = tmp_path / "models--org--model"
    (folder / "snapshots" / REVISION).mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=rf"^org/model: {folder} holds no snapshot with a config.json \(opbsim does "
                                         r"not download\)$"):
        load_model("org/model")


def test_refs_main_naming_a_missing_snapshot_is_an_error(monkeypatch, tmp_path):
    cache_model(tmp_path, "org/model", MISTRAL_7B, main="0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=r"^org/model: refs/main names revision '0123abcd' but .*/snapshots/0123abcd/"
                                         r"config.json is not in the cache$"):
        load_model("org/model")


def test_a_cached_model_is_simulated_by_its_id(monkeypatch, tmp_path):
    llama = MISTRAL_7B | {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    del llama["sliding_window"]
    cache_model(tmp_path, "org/llama-7b", llama)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = CliRunner().invoke(cli, ["simulate", "org/llama-7b", "-d", "h100", "--batch", "2", "--lin", "8",
                                      "--lout", "2", "--requests", "2"])
    assert result.exit_code == 0, result.output


def test_a_preset_or_an_existing_path_wins_over_a_model_id(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model.json").write_text(json.dumps(MISTRAL_7B))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert load_model("org/model.json").name == "model"  # a relative path that exists
    assert load_model("Mixtral-8x7B").name == "mixtral-8x7b"


@pytest.mark.parametrize("text, is_id", [
    ("mistralai/Mistral-7B-v0.1", True), ("Qwen/Qwen1.5-MoE-A2.7B", True), ("org/name_with.dots", True),
    ("mixtral-8x7b", False), ("./config.json", False), ("../x", False), ("a/b/c", False), ("/abs", False),
    ("org/a--b", False), ("org/", False),
])
def test_a_model_id_is_org_slash_name(text, is_id):
    assert is_model_id(text) is is_id
