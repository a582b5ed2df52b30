"""DVAO inside verl 0.9 (0.9.0 and 0.9.1): verl's own `compute_advantage` with "dvao" equals
the engine, and every misconfiguration stops before Ray starts.

Runs in `./scripts/test verl [VERSION]`, once per tested release; skips in the main environment.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from .conftest import require

require("verl", "verl")

from omegaconf import OmegaConf  # noqa: E402  (hydra/omegaconf come with verl)
from verl import DataProto  # noqa: E402
from verl.experimental.separation import ray_trainer as separation  # noqa: E402
from verl.trainer.config import AlgoConfig  # noqa: E402
from verl.trainer.ppo import core_algos, metric_utils, ray_trainer  # noqa: E402
from verl.trainer.ppo.v1 import utils as v1_utils  # noqa: E402
from verl.trainer.ppo.v1.trainer_base import PPOTrainer  # noqa: E402
from verl.utils.tensordict_utils import list_of_dict_to_tensordict  # noqa: E402

from dvao_cli import compute_advantages  # noqa: E402
from dvao_cli.errors import UsageError  # noqa: E402
from dvao_cli.integrations import verl as dvao_verl  # noqa: E402
from dvao_cli.integrations.metrics import objective_metrics  # noqa: E402

KEYS = ["acc", "format", "brevity"]
PROMPT_LENGTH = 3
SIZES = [4, 3, 6, 1, 2, 5]  # ragged groups, one of a single response
RAGGED = [4, 3, 6, 2, 5]  # ragged, none of a single response (ddof 1 takes them)


def make_batch(sizes=SIZES, response_length=7, equal_lengths=False, seed=0) -> DataProto:
    """A DataProto as verl's trainer builds it before the advantage step: shuffled uid groups,
    right padding in response_mask, the per-key rewards in non_tensor_batch; `format` is
    saturated (constant) in groups 0 and 2."""
    gen = np.random.default_rng(seed)
    uid = np.concatenate([[f"prompt-{g}"] * n for g, n in enumerate(sizes)])
    bs = len(uid)
    acc = gen.integers(0, 2, bs).astype(np.float64)
    fmt = gen.integers(0, 2, bs).astype(np.float64)
    fmt[uid == "prompt-0"] = 1.0
    fmt[uid == "prompt-2"] = 0.0
    brevity = gen.random(bs)
    order = gen.permutation(bs)  # verl's batch balancing reorders rows
    uid, acc, fmt, brevity = uid[order], acc[order], fmt[order], brevity[order]

    lengths = (
        np.full(bs, response_length) if equal_lengths else gen.integers(1, response_length + 1, bs)
    )
    response_mask = torch.from_numpy(np.arange(response_length)[None, :] < lengths[:, None])
    response_mask = response_mask.to(torch.int64)  # (bs, response_length)
    attention_mask = torch.cat(
        [torch.ones(bs, PROMPT_LENGTH, dtype=torch.int64), response_mask], dim=1
    )  # (bs, prompt_length + response_length)
    score = acc + fmt + brevity  # what a compute_score would return as "score"
    token_level_scores = torch.zeros(bs, response_length, dtype=torch.float32)
    token_level_scores[torch.arange(bs), torch.from_numpy(lengths - 1)] = torch.from_numpy(
        score
    ).float()  # the score on the last response token, as verl's reward managers place it
    return DataProto.from_dict(
        tensors={
            "prompts": torch.ones(bs, PROMPT_LENGTH, dtype=torch.int64),
            "responses": torch.ones(bs, response_length, dtype=torch.int64),
            "attention_mask": attention_mask,
            "response_mask": response_mask,
            "token_level_scores": token_level_scores,
            "token_level_rewards": token_level_scores.clone(),
        },
        non_tensors={
            "uid": uid.astype(object),
            "acc": acc,
            "format": fmt,
            "brevity": brevity,
        },
    )


def rewards_and_groups(data: DataProto) -> tuple[np.ndarray, np.ndarray]:
    """(bs, K) rewards and (bs,) dense group codes, built here independently of the module."""
    rewards = np.stack([np.asarray(data.non_tensor_batch[k], dtype=np.float64) for k in KEYS], 1)
    codes: dict[str, int] = {}
    group = np.array([codes.setdefault(u, len(codes)) for u in data.non_tensor_batch["uid"]])
    return rewards, group


def algo(estimator="dvao", weights=None) -> AlgoConfig:
    return AlgoConfig(adv_estimator=estimator, gdpo_reward_keys=KEYS, gdpo_reward_weights=weights)


def trainer_config():
    """The parts of verl's trainer config that its advantage steps read."""
    return OmegaConf.create(
        {"algorithm": OmegaConf.structured(algo()), "actor_rollout_ref": {"rollout": {"n": 4}}}
    )


@pytest.fixture(scope="module", autouse=True)
def installed():
    return dvao_verl.install()


@pytest.mark.parametrize("weights", [None, [0.6, 0.3, 0.1]])
def test_verl_compute_advantage_equals_engine(weights):
    data = make_batch()
    out = ray_trainer.compute_advantage(data, adv_estimator="dvao", config=algo(weights=weights))
    rewards, group = rewards_and_groups(data)
    engine = compute_advantages(rewards, group, weights=weights, schemes=("dvao",))
    mask = data.batch["response_mask"]
    expected = engine.advantages["dvao"].float().unsqueeze(-1) * mask
    torch.testing.assert_close(out.batch["advantages"], expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(out.batch["returns"], out.batch["advantages"])
    assert torch.all(out.batch["advantages"][mask == 0] == 0)

    # the paper's formula, group by group: sum_k w_k (r_k - mu_k) / sum_l w_l sigma_l
    w = np.full(len(KEYS), 1 / len(KEYS)) if weights is None else np.asarray(weights)
    first_token = out.batch["advantages"][:, 0].double().numpy()
    for g in np.unique(group):
        r = rewards[group == g]
        denom = (w * r.std(axis=0)).sum()
        want = ((r - r.mean(axis=0)) @ w) / denom if denom > 0 else np.zeros(len(r))
        np.testing.assert_allclose(first_token[group == g], want, rtol=1e-6, atol=1e-7)

    metrics = out.meta_info[dvao_verl.METRICS_KEY]
    assert metrics == pytest.approx(objective_metrics(engine.stats, KEYS, rewards))
    assert {"dvao/all_pass/acc", "dvao/all_fail/format"} <= set(metrics)  # binary keys
    assert "dvao/all_pass/brevity" not in metrics
    assert metrics["dvao/saturation/format"] > 0  # groups 0 and 2 (and the lone response)
    assert metrics["dvao/weight/acc"] > 0


def test_weights_default_as_verl_equal():
    """verl's gdpo_reward_weights default (None) means equal weights; DVAO ignores their scale."""
    equal = ray_trainer.compute_advantage(make_batch(), "dvao", config=algo(weights=[1, 1, 1]))
    default = ray_trainer.compute_advantage(make_batch(), "dvao", config=algo())
    torch.testing.assert_close(equal.batch["advantages"], default.batch["advantages"])


def test_ddof_eps_follow_install():
    data = make_batch(RAGGED)  # no group of one: with ddof 1 it is refused
    try:
        dvao_verl.install(ddof=1, eps=1e-6)
        out = ray_trainer.compute_advantage(data, "dvao", config=algo())
    finally:
        dvao_verl.install()
    rewards, group = rewards_and_groups(data)
    engine = compute_advantages(rewards, group, schemes=("dvao",), ddof=1, eps=1e-6)
    expected = engine.advantages["dvao"].float().unsqueeze(-1) * data.batch["response_mask"]
    torch.testing.assert_close(out.batch["advantages"], expected, rtol=1e-6, atol=1e-7)


def test_install_is_idempotent_and_leaves_other_estimators_alone(installed):
    wrappers = [ray_trainer.compute_advantage, separation.compute_advantage]
    assert dvao_verl.install() == installed
    assert [ray_trainer.compute_advantage, separation.compute_advantage] == wrappers
    original = ray_trainer.compute_advantage.__dvao_wraps__
    for module in (ray_trainer, separation, v1_utils):
        assert module.compute_advantage.__dvao_wraps__ is original
    for module in (ray_trainer, separation):
        assert module.compute_data_metrics.__dvao_wraps__ is metric_utils.compute_data_metrics
    v1_step = PPOTrainer._compute_advantage
    assert v1_step.__dvao_wraps__.__qualname__ == "PPOTrainer._compute_advantage"
    assert not hasattr(v1_step.__dvao_wraps__, "__dvao_wraps__")  # wrapped once
    assert core_algos.get_adv_estimator_fn("dvao") is dvao_verl.compute_dvao_outcome_advantage
    for estimator in ("grpo", "gdpo", "rloo"):
        ours = ray_trainer.compute_advantage(make_batch(), estimator, config=algo(estimator))
        verls = original(make_batch(), estimator, config=algo(estimator))
        torch.testing.assert_close(ours.batch["advantages"], verls.batch["advantages"])
        assert dvao_verl.METRICS_KEY not in ours.meta_info


def test_install_stops_in_one_line_when_verl_differs(monkeypatch):
    def compute_advantage(data, adv_estimator):  # not verl 0.9.1's
        return data

    monkeypatch.setattr(ray_trainer, "compute_advantage", compute_advantage)
    with pytest.raises(dvao_verl.VerlVersionError, match="ray_trainer.compute_advantage") as info:
        dvao_verl.install()
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    monkeypatch.setattr(separation, "compute_data_metrics", lambda batch, use_critic=True: {})
    with pytest.raises(dvao_verl.VerlVersionError, match="separation.ray_trainer"):
        dvao_verl.install()


def test_estimator_takes_non_tensor_batch_when_verl_passes_it():
    """What verl PR #7473 would do: pass non_tensor_batch to every estimator, no install needed."""
    data = make_batch()
    advantages, _ = dvao_verl.compute_dvao_outcome_advantage(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=data.batch["response_mask"],
        index=data.non_tensor_batch["uid"],
        config=algo(),
        non_tensor_batch=data.non_tensor_batch,
    )
    out = ray_trainer.compute_advantage(make_batch(), "dvao", config=algo())
    torch.testing.assert_close(advantages, out.batch["advantages"])


def test_missing_or_non_finite_rewards_stop_the_step():
    data = make_batch()
    data.non_tensor_batch.pop("brevity")
    with pytest.raises(KeyError, match="brevity"):
        ray_trainer.compute_advantage(data, "dvao", config=algo())
    data = make_batch()
    data.non_tensor_batch["acc"] = data.non_tensor_batch["acc"].astype(object)
    data.non_tensor_batch["acc"][3] = None  # a reward function that returned nothing
    with pytest.raises(ValueError, match=r"\['acc'\] have None, NaN or inf"):
        ray_trainer.compute_advantage(data, "dvao", config=algo())


def test_separation_trainer_call_site_and_metrics():
    """The separation / fully-async / one-step-off trainers' advantage step, run as written:
    reward extras enter non_tensor_batch there, then the step's metrics reach
    compute_data_metrics."""
    full = make_batch()
    extras = {k: list(full.non_tensor_batch[k]) for k in KEYS}
    batch = make_batch()
    for key in KEYS:
        batch.non_tensor_batch.pop(key)
    trainer = separation.SeparateRayPPOTrainer.__new__(separation.SeparateRayPPOTrainer)
    trainer.config, trainer.metrics, trainer.timing_raw = trainer_config(), {}, {}
    trainer.reward_tensor = batch.batch["token_level_scores"]
    trainer.reward_extra_infos_dict = extras
    batch = trainer._fit_compute_advantage(batch)
    expected = ray_trainer.compute_advantage(full, "dvao", config=algo())
    torch.testing.assert_close(batch.batch["advantages"], expected.batch["advantages"])

    metrics = separation.compute_data_metrics(batch=batch, use_critic=False)
    assert {f"dvao/{m}/{k}" for m in ("weight", "within_std", "saturation") for k in KEYS} <= set(
        metrics
    )
    assert "critic/advantages/mean" in metrics  # verl's own metrics are still there
    assert dvao_verl.METRICS_KEY not in batch.meta_info  # taken, not left to the next step
    assert metrics["dvao/within_std/brevity"] == pytest.approx(
        expected.meta_info[dvao_verl.METRICS_KEY]["dvao/within_std/brevity"]
    )


@dataclass
class KVBatch:
    """verl's KVBatchMeta, as `_compute_advantage` reads it."""

    keys: list[str]
    tags: list[dict]
    partition_id: str = "train"

    def __len__(self) -> int:
        return len(self.keys)


class FakeTransferQueue:
    """verl's TransferQueue client for one stored batch: rows as the v1 agent loop puts them."""

    def __init__(self, rows: list[dict]):
        self.keys = [row.pop("key") for row in rows]
        self.stored = list_of_dict_to_tensordict(rows)
        self.put: dict = {}

    def kv_batch_get(self, keys, partition_id, select_fields):
        assert keys == self.keys and partition_id == "train"
        return self.stored.select(*[f for f in select_fields if f in self.stored.keys()])

    def kv_batch_put(self, keys, partition_id, fields):
        assert keys == self.keys and partition_id == "train"
        self.put = fields
        return "stored"


def v1_rows(data: DataProto) -> tuple[list[dict], list[dict]]:
    """The batch as v1 rows ({uid}_{session}_{index} keys, nested responses, reward_extra_info
    in extra_fields) plus a padding sample, a copy of the first in a group of its own."""
    rows, tags = [], []
    for i in range(len(data)):
        length = int(data.batch["response_mask"][i].sum())
        info = {key: float(data.non_tensor_batch[key][i]) for key in KEYS}
        rows.append(
            {
                "key": f"{data.non_tensor_batch['uid'][i]}_{i}_0",
                "uid": data.non_tensor_batch["uid"][i],
                "response_mask": data.batch["response_mask"][i, :length],
                "rm_scores": data.batch["token_level_scores"][i, :length],
                "extra_fields": {"reward_extra_info": info, "min_global_steps": 1},
            }
        )
        tags.append({"global_steps": 1})
    pad = {**rows[0], "key": "padf00_0_0", "uid": "padf00"}
    pad["response_mask"], pad["rm_scores"] = torch.zeros(1, dtype=torch.int64), torch.zeros(1)
    return [*rows, pad], [*tags, {"global_steps": 1, "is_padding": True}]


def test_v1_trainer_advantage_step(monkeypatch):
    """verl 0.9.1's v1 `PPOTrainer._compute_advantage` fetches only uid, masks, scores,
    log-probs and values from TransferQueue; install() makes it fetch the reward keys too."""
    from verl.trainer.ppo.v1 import trainer_base
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    data = make_batch()
    rows, tags = v1_rows(data)
    queue = FakeTransferQueue(rows)
    monkeypatch.setattr(trainer_base, "tq", queue)
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)
    trainer.config = trainer_config()
    metrics: dict = {}
    assert trainer._compute_advantage(KVBatch(queue.keys, tags), metrics=metrics) == "stored"

    expected = ray_trainer.compute_advantage(make_batch(), "dvao", config=algo())
    advantages = queue.put["advantages"].to_padded_tensor(0.0)  # (bs + 1, max length)
    width = advantages.shape[1]
    torch.testing.assert_close(advantages[:-1], expected.batch["advantages"][:, :width])
    assert torch.all(advantages[-1] == 0)  # the padding sample
    assert metrics == pytest.approx(expected.meta_info[dvao_verl.METRICS_KEY])  # real rows only


def test_v1_advantage_without_the_fetch_fails_naming_the_setting():
    data = make_batch()
    for key in KEYS:
        data.non_tensor_batch.pop(key)
    keys = [f"{u}_{i}_0" for i, u in enumerate(data.non_tensor_batch["uid"])]
    with pytest.raises(RuntimeError, match=r"trainer\.use_v1=false") as info:
        v1_utils.compute_advantage_for_multi_trajectories(
            data, batch_keys=keys, adv_estimator="dvao", config=algo()
        )
    assert "\n" not in str(info.value)


def test_entry_config_declares_the_reward_fields():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    name = dvao_verl.store_config()
    GlobalHydra.instance().clear()
    with initialize_config_module(dvao_verl.CONFIG_PATH.removeprefix("pkg://"), version_base=None):
        overrides = ["algorithm.adv_estimator=dvao", "algorithm.gdpo_reward_keys=[acc,format]"]
        config = compose(name, overrides=overrides)  # no `+` needed
        no_keys = compose(name, overrides=overrides[:1])
        with pytest.raises(Exception, match=r"\+algorithm\.gdpo_reward_keys"):
            compose("ppo_trainer", overrides=overrides)  # verl's own config wants the `+`
    assert list(config.algorithm.gdpo_reward_keys) == ["acc", "format"]
    assert config.algorithm.gdpo_reward_weights is None
    assert config.trainer.use_v1  # verl 0.9's default
    # verl's default group size is 1 (PPO's): a GRPO-style run sets actor_rollout_ref.rollout.n
    with pytest.raises(UsageError, match=r"^actor_rollout_ref\.rollout\.n=1: a group needs"):
        dvao_verl.check_config(config)
    config.actor_rollout_ref.rollout.n = 4
    dvao_verl.check_config(config)
    with pytest.raises(UsageError, match=r"^set algorithm\.gdpo_reward_keys"):
        dvao_verl.check_config(no_keys)


def compose_config(*overrides: str):
    """The entry's Hydra config with these overrides (verl's ppo_trainer plus the reward
    fields), as `python -m dvao_cli.integrations.verl` composes it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    name = dvao_verl.store_config()
    GlobalHydra.instance().clear()
    with initialize_config_module(dvao_verl.CONFIG_PATH.removeprefix("pkg://"), version_base=None):
        return compose(name, overrides=["algorithm.adv_estimator=dvao", *overrides])


@pytest.mark.parametrize(
    ("overrides", "ddof", "eps", "message"),
    [
        (
            ["algorithm.gdpo_reward_keys=acc"],
            0,
            0.0,
            "algorithm.gdpo_reward_keys='acc' is one string, not a list of reward keys: write "
            "algorithm.gdpo_reward_keys=[acc]",
        ),
        (["algorithm.gdpo_reward_keys=[]"], 0, 0.0, "algorithm.gdpo_reward_keys is empty"),
        (
            ["algorithm.gdpo_reward_keys=[acc,acc]"],
            0,
            0.0,
            "algorithm.gdpo_reward_keys: acc listed more than once",
        ),
        (
            ["algorithm.gdpo_reward_weights=[0.5]"],
            0,
            0.0,
            "algorithm.gdpo_reward_weights: weights must have one entry per objective (2), got 1",
        ),
        (
            ["algorithm.gdpo_reward_weights=[0.5,-0.5]"],
            0,
            0.0,
            "algorithm.gdpo_reward_weights: weights must be finite and >= 0, got -0.5",
        ),
        (
            ["algorithm.gdpo_reward_weights=0.5"],
            0,
            0.0,
            "algorithm.gdpo_reward_weights=0.5: expected a list of numbers, one per reward "
            "(acc, format)",
        ),
        (
            ["algorithm.gdpo_reward_weights=[a,b]"],
            0,
            0.0,
            "algorithm.gdpo_reward_weights=['a', 'b']: the weights must be numbers",
        ),
        (
            ["algorithm.gdpo_reward_weights=[1e-320,1e-320]"],
            0,
            0.0,
            "algorithm.gdpo_reward_weights: weights: 1e-320 is too small to compute with",
        ),
        (
            ["algorithm.gdpo_reward_weights=[0,0]"],
            0,
            0.0,
            "algorithm.gdpo_reward_weights: weights are all 0",
        ),
        ([], -1, 0.0, "--ddof: ddof must be an integer >= 0, got -1"),
        ([], 0, -1e-6, "--eps: eps must be a finite number >= 0, got -1e-06"),
        (
            ["actor_rollout_ref.rollout.n=4"],
            4,
            0.0,
            "--ddof=4 with actor_rollout_ref.rollout.n=4: ",
        ),
        (
            ["actor_rollout_ref.rollout.n=1"],
            0,
            0.0,
            "actor_rollout_ref.rollout.n=1: a group needs at least 2 responses",
        ),
    ],
)
def test_check_config_names_each_misconfiguration(overrides, ddof, eps, message):
    config = compose_config("algorithm.gdpo_reward_keys=[acc,format]", *overrides)
    with pytest.raises(UsageError) as info:
        dvao_verl.check_config(config, ddof, eps)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_check_config_passes_a_good_run_and_ignores_other_estimators():
    good = ["algorithm.gdpo_reward_keys=[acc,format]", "actor_rollout_ref.rollout.n=4"]
    dvao_verl.check_config(compose_config(*good, "algorithm.gdpo_reward_weights=[0.7,0.3]"), 3)
    other = compose_config("algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=1")
    dvao_verl.check_config(other, 5)


def test_install_and_task_runner_check_ddof_and_eps():
    with pytest.raises(UsageError, match="^ddof: ddof must be an integer >= 0, got -1"):
        dvao_verl.install(ddof=-1)
    with pytest.raises(UsageError, match="^eps: eps must be a finite number >= 0, got nan"):
        dvao_verl.task_runner(eps=float("nan"))
    assert dvao_verl.settings == dvao_verl.Settings()  # nothing changed


def test_a_ragged_group_at_or_below_ddof_stops_the_first_batch():
    """Groups are ragged in verl: only the batch shows a group too small for ddof."""
    try:
        dvao_verl.install(ddof=1)
        with pytest.raises(
            UsageError, match=r"^ddof=1: 1 group\(s\) in this batch have 1 or fewer"
        ):
            ray_trainer.compute_advantage(make_batch(), "dvao", config=algo())  # a lone response
        dvao_verl.install(ddof=2)
        with pytest.raises(
            UsageError, match=r"^ddof=2: 2 group\(s\) in this batch have 2 or fewer"
        ):
            ray_trainer.compute_advantage(make_batch(), "dvao", config=algo())
    finally:
        dvao_verl.install()
    # ddof 0: a lone response gets 0, as in every scheme, and the others train
    out = ray_trainer.compute_advantage(make_batch(), "dvao", config=algo())
    assert out.batch["advantages"].abs().sum() > 0


def test_estimator_refuses_a_key_string_at_run_time():
    config = AlgoConfig(adv_estimator="dvao", gdpo_reward_keys="acc")
    with pytest.raises(UsageError, match="'acc' is one string"):
        ray_trainer.compute_advantage(make_batch(), "dvao", config=config)


def test_python_m_entry(monkeypatch, capsys, tmp_path):
    """`python -m dvao_cli.integrations.verl`: our flags, then verl's Hydra overrides; a run
    without reward keys stops before Ray starts, in one line."""
    command = [sys.executable, "-W", "ignore", "-m", "dvao_cli.integrations.verl"]
    run = {"capture_output": True, "text": True, "timeout": 120, "cwd": tmp_path}  # outputs/
    stopped = subprocess.run([*command, "algorithm.adv_estimator=dvao"], **run)
    assert stopped.returncode != 0
    assert stopped.stderr.splitlines()[-1].startswith("dvao: set algorithm.gdpo_reward_keys")
    # a bad flag and a key list without brackets stop there too, before Ray starts
    keys = "algorithm.gdpo_reward_keys=acc"
    stopped = subprocess.run([*command, "algorithm.adv_estimator=dvao", keys], **run)
    assert stopped.returncode != 0
    last = stopped.stderr.splitlines()[-1]
    assert last.startswith("dvao: algorithm.gdpo_reward_keys='acc' is one string"), last
    assert "Started a local Ray instance" not in stopped.stdout + stopped.stderr
    flags = ["--ddof", "8", "actor_rollout_ref.rollout.n=8", "algorithm.gdpo_reward_keys=[a,b]"]
    stopped = subprocess.run([*command, *flags, "algorithm.adv_estimator=dvao"], **run)
    last = stopped.stderr.splitlines()[-1]
    assert last.startswith("dvao: --ddof=8 with actor_rollout_ref.rollout.n=8: "), last

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["verl.py"])  # main() rewrites it for Hydra
    overrides = ["algorithm.adv_estimator=dvao", "algorithm.gdpo_reward_keys=[acc,format]"]
    dvao_verl.main(["--ddof", "1", "--cfg", "job", *overrides])
    algorithm = OmegaConf.create(capsys.readouterr().out).algorithm
    assert algorithm.adv_estimator == "dvao"
    assert list(algorithm.gdpo_reward_keys) == ["acc", "format"]


def test_task_runner_classes():
    from verl.trainer import main_ppo, main_ppo_v0

    for use_v1, verls in ((True, main_ppo.TaskRunnerV1), (False, main_ppo_v0.TaskRunner)):
        runner = dvao_verl.task_runner(use_v1).__ray_actor_class__
        assert issubclass(runner, verls.__ray_actor_class__)
        assert runner().install_dvao() == dvao_verl.install()


def test_task_runner_checks_the_config_before_it_builds_anything():
    """A launcher of one's own that skipped check_config: the actor stops at run()."""
    runner = dvao_verl.task_runner(use_v1=True, ddof=2).__ray_actor_class__()
    config = compose_config("algorithm.gdpo_reward_keys=acc")
    with pytest.raises(UsageError, match="'acc' is one string"):
        runner.run(config)
    config = compose_config("algorithm.gdpo_reward_keys=[acc]", "actor_rollout_ref.rollout.n=2")
    with pytest.raises(UsageError, match=r"^--ddof=2 with actor_rollout_ref\.rollout\.n=2"):
        runner.run(config)


def test_task_runner_installs_dvao_in_the_ray_actor():
    """The class handed to main_ppo.run_ppo installs DVAO in its own (fresh) actor process."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        runner = dvao_verl.task_runner(use_v1=False, ddof=1, eps=1e-6).remote()
        batch = make_batch(RAGGED)  # ddof 1 refuses a group of one
        sites = ray.get(runner.install_dvao.remote(), timeout=120)

        def in_actor(self, data, config):  # runs in the actor; pickled by value, so no test globals
            from verl.trainer.ppo import core_algos, ray_trainer

            from dvao_cli.integrations import verl as module

            out = ray_trainer.compute_advantage(data, "dvao", config=config)
            name = core_algos.get_adv_estimator_fn("dvao").__name__
            return name, module.settings, out.batch["advantages"]

        call = runner.__ray_call__.remote(in_actor, batch, algo())
        name, settings, advantages = ray.get(call, timeout=60)
    finally:
        ray.shutdown()
    assert sites == dvao_verl.install()
    assert name == "compute_dvao_outcome_advantage"
    assert settings == dvao_verl.Settings(ddof=1, eps=1e-6)
    data = make_batch(RAGGED)
    rewards, group = rewards_and_groups(data)
    engine = compute_advantages(rewards, group, schemes=("dvao",), ddof=1, eps=1e-6)
    expected = engine.advantages["dvao"].float().unsqueeze(-1) * data.batch["response_mask"]
    torch.testing.assert_close(advantages, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("response_length", [1, 5])
def test_verl_gdpo_whitens_over_tokens(response_length):
    """docs/schemes.md: with equal lengths L over N responses, verl's gdpo is the engine's
    gdpo (ddof 1, eps 1e-6, whitened per response) times sqrt((N L - 1) / (L (N - 1)))."""
    sizes = [4, 3, 6, 2, 5]  # no group of one: verl gives it mu 0, std 1
    data = make_batch(sizes, response_length=response_length, equal_lengths=True)
    out = ray_trainer.compute_advantage(data, "gdpo", config=algo("gdpo"))
    rewards, group = rewards_and_groups(data)
    weights = [1.0] * len(KEYS)  # verl's default gdpo_reward_weights
    engine = compute_advantages(
        rewards, group, weights=weights, schemes=("gdpo",), ddof=1, eps=1e-6
    )
    n = sum(sizes)
    factor = math.sqrt((n * response_length - 1) / (response_length * (n - 1)))
    expected = (engine.advantages["gdpo"] * factor).float().unsqueeze(-1).expand(n, response_length)
    torch.testing.assert_close(out.batch["advantages"], expected, rtol=1e-5, atol=1e-5)
    if response_length > 1:
        assert factor > 1.01  # per-response whitening would be visibly off
