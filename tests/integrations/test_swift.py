"""The ms-swift plugin (dvao_cli/integrations/swift.py) against ms-swift 4.5 and 4.6.

Run with `./scripts/test swift [VERSION]`, once per tested release. The trainer is built with
`object.__new__` plus the attributes that swift's `_compute_advantages` and ours read
(swift/rlhf_trainers/grpo_trainer.py), so no model is loaded; the rewards are what
`_compute_rewards_per_func` hands over: (N, K) float32, gathered over processes, NaN where a
reward function returned None.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from types import ModuleType, SimpleNamespace

import pytest
import torch

from dvao_cli import compute_advantages
from dvao_cli.integrations.metrics import objective_metrics
from dvao_cli.integrations.versions import SUPPORTED
from tests.integrations.conftest import require

require("swift", "swift")
trainer_factory = require("swift", "swift.trainers").TrainerFactory
swift_grpo = require("swift", "swift.rlhf_trainers.grpo_trainer").GRPOTrainer
plugin = require("swift", "dvao_cli.integrations.swift")

NAMES = ("accuracy", "format", "length")
WEIGHTS = (0.5, 0.2, 0.3)
G = 4


@pytest.fixture(autouse=True)
def swift_mapping():
    """Each test starts with the plugin installed and leaves TRAINER_MAPPING as it found it."""
    saved = dict(trainer_factory.TRAINER_MAPPING)
    plugin.install()
    yield
    trainer_factory.TRAINER_MAPPING.clear()
    trainer_factory.TRAINER_MAPPING.update(saved)


def make_trainer(
    settings: plugin.Settings = plugin.Settings(),
    *,
    training: bool = True,
    dynamic: bool = False,
    num_generations_eval: int = 2,
):
    trainer = object.__new__(plugin.DvaoGRPOTrainer)
    trainer.__dict__.update(
        settings=settings,
        model=SimpleNamespace(training=training),
        accelerator=SimpleNamespace(device=torch.device("cpu")),
        reward_func_names=list(NAMES),
        args=SimpleNamespace(reward_weights=list(WEIGHTS)),
        reward_weights=torch.tensor(WEIGHTS, dtype=torch.float32),
        num_generations=G,
        num_generations_eval=num_generations_eval,
        dynamic_num_samples=dynamic,
        advantage_estimator="grpo",
        scale_rewards="group",
        kl_in_reward=False,
        beta=0.04,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _logs={"rewards": defaultdict(list)},
    )
    return trainer


def rewards(n_groups: int = 6, *, missing: bool = True) -> torch.Tensor:
    """(n_groups * G, 3) float32: binary accuracy (group 0 all correct), format saturated at 1
    everywhere, length in [0, 1] with None (NaN) rows and, in group 1, no value at all."""
    gen = torch.Generator().manual_seed(13)
    n = n_groups * G
    accuracy = torch.randint(0, 2, (n,), generator=gen).float()
    accuracy[:G] = 1.0
    length = torch.rand(n, generator=gen)
    if missing:
        length[torch.rand(n, generator=gen) < 0.25] = float("nan")
        length[G : 2 * G] = float("nan")
    return torch.stack([accuracy, torch.ones(n), length], dim=1)


def engine(r: torch.Tensor, group: torch.Tensor, settings: plugin.Settings):
    return compute_advantages(
        r.double(),
        group,
        None,
        torch.tensor(WEIGHTS, dtype=torch.float32),  # swift's reward_weights
        schemes=(settings.scheme,),
        ddof=settings.ddof,
        eps=settings.eps,
        nan="ignore",
        device="cpu",
    )


def assert_engine_equal(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == torch.float32 and got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-6)


PLUGIN_FILE = os.path.join(os.path.dirname(plugin.__file__), "swift_plugin.py")


def test_loading_the_plugin_file_remaps_grpo_as_swift_loads_it():
    from swift.utils import import_external_file

    here = os.path.dirname(plugin.__file__)
    trainer_factory.TRAINER_MAPPING["grpo"] = plugin.SWIFT_GRPO  # as swift starts
    # what --external_plugins does: 4.5 imports the file by its bare name with its folder first
    # on sys.path, 4.6 from its path under a name of its own
    module = import_external_file(PLUGIN_FILE)
    try:
        assert module.__file__ == PLUGIN_FILE
        assert trainer_factory.TRAINER_MAPPING["grpo"] == plugin.trainer_path()
        trainer_cls = trainer_factory.get_trainer_cls(SimpleNamespace(rlhf_type="grpo"))
        assert trainer_cls is plugin.DvaoGRPOTrainer and issubclass(trainer_cls, swift_grpo)
        # swift put the plugin's folder first on sys.path; its trl.py would shadow trl
        assert here not in [os.path.abspath(p) for p in sys.path if p]
    finally:
        sys.modules.pop(module.__name__)


def test_importing_the_module_remaps_grpo():
    assert trainer_factory.TRAINER_MAPPING["grpo"] == "dvao_cli.integrations.swift.DvaoGRPOTrainer"
    trainer_cls = trainer_factory.get_trainer_cls(SimpleNamespace(rlhf_type="grpo"))
    assert trainer_cls is plugin.DvaoGRPOTrainer
    plugin.install()  # idempotent
    assert trainer_factory.get_trainer_cls(SimpleNamespace(rlhf_type="grpo")) is trainer_cls


def test_module_prints_its_path_without_importing_swift():
    code = (
        "import runpy, sys\n"
        "try:\n"
        "    runpy.run_module('dvao_cli.integrations.swift', run_name='__main__')\n"
        "except SystemExit:\n"
        "    print('swift' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [PLUGIN_FILE, "False"]
    # and `dvao_cli` itself never imports swift
    code = "import sys, dvao_cli, dvao_cli.integrations; print('swift' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


@pytest.mark.parametrize("scheme", ["dvao", "rc", "ac", "gdpo", "grpo"])
def test_advantages_equal_the_engine(scheme):
    settings = plugin.Settings(scheme)
    trainer = make_trainer(settings)
    r = rewards()
    r[G + 1] = float("nan")  # every reward function returned None for this completion
    got = trainer._compute_advantages([], r, [])
    group = torch.arange(r.shape[0]) // G
    assert_engine_equal(got, engine(r, group, settings).advantages[scheme])
    assert bool(got.isfinite().all())


def test_dvao_ignores_a_saturated_objective_and_is_bounded_by_rc():
    trainer = make_trainer()
    r = rewards(missing=False)
    r[:G, 2] = 0.5  # group 0: every objective constant
    dvao = trainer._compute_advantages([], r, [])
    shifted = r.clone()
    shifted[:, 1] = 0.25  # another constant for the saturated objective: no signal either way
    assert_engine_equal(trainer._compute_advantages([], shifted, []), dvao.double())
    rc = make_trainer(plugin.Settings("rc"))._compute_advantages([], r, [])
    assert bool((dvao.abs() <= rc.abs() + 1e-6).all())
    assert bool((dvao[:G] == 0).all())  # no signal in group 0


def test_rc_with_swift_conventions_equals_swift_own_advantages():
    """DVAO_SCHEME=rc DVAO_DDOF=1 DVAO_EPS=1e-4 reproduces swift's --scale_rewards group."""
    trainer = make_trainer(plugin.Settings("rc", ddof=1, eps=1e-4))
    r = rewards(missing=False)
    swift_own = swift_grpo._compute_advantages(trainer, [], r, [])
    torch.testing.assert_close(trainer._compute_advantages([], r, []), swift_own)


def test_metrics_reach_swift_metrics_beside_swift_own():
    trainer = make_trainer()
    r = rewards()
    trainer._compute_advantages([], r, [])
    stats = engine(r, torch.arange(r.shape[0]) // G, trainer.settings).stats
    expected = objective_metrics(stats, NAMES, r)
    assert "dvao/all_pass/accuracy" in expected and "dvao/all_pass/length" not in expected
    logged = trainer._metrics["train"]
    assert {key: logged[key] for key in expected} == {k: [v] for k, v in expected.items()}
    assert logged["dvao/saturation/format"] == [1.0]
    assert logged["dvao/weight/format"] == [0.0]
    assert logged["dvao/all_pass/format"] == [1.0] and logged["dvao/all_fail/format"] == [0.0]
    # swift's own reward metrics and completions-table rewards are still there
    assert {"reward", "reward_std", "frac_reward_zero_std", "rewards/accuracy/mean"} <= set(logged)
    assert list(trainer._logs["rewards"]) == list(NAMES)


def test_eval_groups_by_num_generations_eval():
    trainer = make_trainer(training=False, num_generations_eval=2)
    r = rewards()
    got = trainer._compute_advantages([], r, [])
    group = torch.arange(r.shape[0]) // 2
    assert_engine_equal(got, engine(r, group, trainer.settings).advantages["dvao"])
    assert "dvao/within_std/length" in trainer._metrics["eval"]
    assert not any(key.startswith("dvao/") for key in trainer._metrics["train"])


def test_multi_turn_requests_group_by_prompt_in_any_order():
    """dynamic_num_samples (multi-turn): a request has one row per turn, all with its rewards;
    the G requests of one prompt_id form a group, interleaved with the other prompts'."""
    turns = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 2, 1]  # rows per request
    prompt_of = [0, 1, 2, 0, 2, 1, 0, 1, 2, 0, 1, 2]  # request -> prompt: G = 4 each
    request_rows = torch.repeat_interleave(torch.arange(len(turns)), torch.tensor(turns))
    per_request_rewards = rewards(3)  # (12, 3)
    r = per_request_rewards[request_rows]  # (N, 3), N = sum(turns)
    samples = [
        SimpleNamespace(prompt_id=f"p{prompt_of[q]}", request_id=f"r{q}")
        for q in request_rows.tolist()
    ]
    trainer = make_trainer(dynamic=True)
    got = trainer._compute_advantages(samples, r, [])
    expected = engine(per_request_rewards, torch.tensor(prompt_of), trainer.settings)
    assert_engine_equal(got, expected.advantages["dvao"][request_rows])


def test_settings_from_the_environment():
    assert plugin.Settings.from_env({}) == plugin.Settings("dvao", 0, 0.0)
    env = {"DVAO_SCHEME": "RC", "DVAO_DDOF": "1", "DVAO_EPS": "1e-4"}
    assert plugin.Settings.from_env(env) == plugin.Settings("rc", 1, 1e-4)
    for bad, message in (
        ({"DVAO_SCHEME": "ppo"}, "DVAO_SCHEME='ppo': use one of"),
        ({"DVAO_DDOF": "x"}, "DVAO_DDOF / DVAO_EPS: invalid literal"),
        ({"DVAO_DDOF": "-1"}, "DVAO_DDOF: ddof must be an integer >= 0, got -1"),
        ({"DVAO_EPS": "-1"}, "DVAO_EPS: eps must be a finite number >= 0, got -1.0"),
        ({"DVAO_EPS": "nan"}, "DVAO_EPS: eps must be a finite number >= 0, got nan"),
    ):
        with pytest.raises(plugin.PluginError, match=f"^{message}"):
            plugin.Settings.from_env(bad)


def test_a_bad_setting_stops_the_plugin_when_it_loads():
    env = {**os.environ, "DVAO_DDOF": "-2"}
    code = "import dvao_cli.integrations.swift"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert out.stderr.splitlines()[-1].endswith(
        "PluginError: DVAO_DDOF: ddof must be an integer >= 0, got -2"
    )


@pytest.mark.parametrize("ddof", [G, G + 1])
def test_ddof_at_or_above_num_generations_stops_the_trainer(ddof):
    trainer = make_trainer(plugin.Settings(ddof=ddof))
    with pytest.raises(plugin.PluginError, match=f"^DVAO_DDOF={ddof} with --num_generations={G}: "):
        trainer.check_settings()
    # before swift builds anything: from the GRPOConfig the constructor receives
    trainer.settings = plugin.Settings(ddof=ddof)
    args = SimpleNamespace(num_generations=G)
    with pytest.raises(plugin.PluginError, match="train on nothing"):
        plugin.DvaoGRPOTrainer.__init__(trainer, model=None, args=args)
    make_trainer(plugin.Settings(ddof=G - 1)).check_settings()


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1e-320, 1e-320, 1e-320], "--reward_weights: weights: 1e-320 is too small"),
        ([0.0, 0.0, 0.0], "--reward_weights: weights are all 0"),
        ([0.5, -0.2, 0.3], "--reward_weights: weights must be finite and >= 0, got -0.2"),
    ],
)
def test_weights_that_cannot_train_stop_the_trainer(weights, message):
    trainer = make_trainer()
    trainer.args.reward_weights = weights
    with pytest.raises(plugin.PluginError, match=f"^{message}"):
        trainer.check_settings()


def test_a_multi_turn_group_at_or_below_ddof_stops_the_batch():
    """In multi-turn mode a prompt's requests decide its group size: ragged, known per batch."""
    samples = [SimpleNamespace(prompt_id=p, request_id=f"r{i}") for i, p in enumerate("aaabbbbc")]
    trainer = make_trainer(plugin.Settings(ddof=1), dynamic=True)
    with pytest.raises(plugin.PluginError, match=r"^DVAO_DDOF=1: 1 group\(s\) in this batch"):
        trainer._compute_advantages(samples, rewards(2), [])
    trainer.settings = plugin.Settings(ddof=0)  # a lone request gets 0, as in every scheme
    assert trainer._compute_advantages(samples, rewards(2), [])[-1] == 0


def test_settings_read_when_the_plugin_loads():
    code = (
        "import dvao_cli.integrations.swift as p; s = p.DvaoGRPOTrainer.settings; "
        "print(s.scheme, s.ddof, s.eps)"
    )
    env = {**os.environ, "DVAO_SCHEME": "gdpo", "DVAO_DDOF": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split()[-3:] == ["gdpo", "1", "0.0"]


@pytest.mark.parametrize(
    "setting",
    [{"advantage_estimator": "rloo"}, {"scale_rewards": "batch"}, {"kl_in_reward": True}],
)
def test_swift_settings_that_would_change_the_advantage_stop_the_run(setting):
    trainer = make_trainer()
    trainer.check_settings()
    trainer.__dict__.update(setting)
    with pytest.raises(plugin.PluginError):
        trainer.check_settings()


def test_unexpected_swift_internals_stop_the_plugin(monkeypatch):
    monkeypatch.setitem(trainer_factory.TRAINER_MAPPING, "grpo", "elsewhere.GRPOTrainer")
    with pytest.raises(plugin.PluginError, match=SUPPORTED["swift"]):
        plugin.install()


def test_megatron_stops_the_plugin(monkeypatch):
    monkeypatch.setitem(sys.modules, "swift.megatron.arguments", ModuleType("megatron_args"))
    with pytest.raises(plugin.PluginError, match="Megatron"):
        plugin.install()


REWARD_PLUGIN = """
from swift.rewards import ORM, orms


class accuracy(ORM):  # binary, varies within groups
    def __call__(self, completions, **kwargs):
        return [float(ord(c[0]) % 2) if c else 0.0 for c in completions]


class format(ORM):  # saturated: every group has zero variance
    def __call__(self, completions, **kwargs):
        return [1.0 for _ in completions]


class length(ORM):  # None for some completions (NaN, skipped)
    def __call__(self, completions, **kwargs):
        return [None if any(ch.isdigit() for ch in c) else len(set(c)) / 6 for c in completions]


orms.update(accuracy=accuracy, format=format, length=length)
"""


def tiny_model(path: str) -> None:
    """A 2-layer Qwen2 with a character tokenizer and swift's qwen chat markers, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate([*special, "\n", *map(chr, range(32, 127))])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=special[1:],
    )
    tokenizer.save_pretrained(path)
    config = Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)


def test_swift_rlhf_trains_on_the_engine_advantages(tmp_path):
    """`swift rlhf --rlhf_type grpo --external_plugins <plugin>`: 3 steps on CPU. The advantages
    in swift's completions.jsonl (those the loss consumed) are the engine's DVAO of the logged
    rewards, and the dvao/... metrics reach swift's logging.jsonl."""
    import json

    model = tmp_path / "tiny-qwen2"
    tiny_model(str(model))
    data = tmp_path / "data.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"say {i}"}]} for i in range(16)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rewards_file = tmp_path / "rewards.py"
    rewards_file.write_text(REWARD_PLUGIN)
    path = subprocess.run(
        [sys.executable, "-m", "dvao_cli.integrations.swift"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = tmp_path / "run"
    # fmt: off
    command = [
        os.path.join(os.path.dirname(sys.executable), "swift"), "rlhf", "--rlhf_type", "grpo",
        "--model", str(model), "--model_type", "qwen2", "--template", "qwen",
        "--dataset", str(data), "--split_dataset_ratio", "0", "--dataset_num_proc", "1",
        "--external_plugins", str(rewards_file), path,
        "--reward_funcs", *NAMES, "--reward_weights", *map(str, WEIGHTS),
        "--num_generations", str(G), "--per_device_train_batch_size", str(2 * G),
        "--max_completion_length", "6", "--max_steps", "3", "--beta", "0",
        "--tuner_type", "full", "--torch_dtype", "float32",
        "--logging_steps", "1", "--log_completions", "true", "--report_to", "none",
        "--save_strategy", "no", "--eval_strategy", "no", "--dataloader_num_workers", "0",
        "--check_model", "false", "--output_dir", str(out), "--add_version", "false",
    ]
    # fmt: on
    env = {**os.environ, "DVAO_SCHEME": "dvao", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]

    tables: dict[str, dict] = {}  # step -> table; swift's closing log repeats the last step's
    for line in (out / "completions.jsonl").read_text().splitlines():
        table = json.loads(line)
        tables.setdefault(table["step"][0], table)
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    logs = [entry for entry in logs if "dvao/weight/accuracy" in entry]
    assert len(tables) == len(logs) == 3
    for table, logged in zip(tables.values(), logs, strict=True):
        r = torch.tensor([table[name] for name in NAMES], dtype=torch.float32).T  # (2 G, 3)
        result = engine(r, torch.arange(r.shape[0]) // G, plugin.Settings())
        trained = torch.tensor(table["advantages"], dtype=torch.float32)
        assert_engine_equal(trained, result.advantages["dvao"])
        expected = objective_metrics(result.stats, NAMES, r)
        assert {key: logged[key] for key in expected} == pytest.approx(expected, abs=1e-6)
        assert logged["dvao/all_pass/format"] == 1.0
        assert logged["dvao/saturation/format"] == 1.0
