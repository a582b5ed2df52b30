"""TRL integration (dvao_cli/integrations/trl.py): real GRPOTrainer runs on CPU, at both ends
of the supported range (versions.py), each in its own environment.

A tiny Qwen2 model and a character-level tokenizer are built in code (no downloads). A probe
subclass records each generation's gathered rewards (N, K) and, at `_compute_loss`, the
advantages the loss consumed with a row tag that survives TRL's shuffle and buffering, so the
tests compare what TRL trained on with the engine, row by row.

Run with `./scripts/test trl` (the TRL environment); elsewhere these tests skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import polars as pl  # noqa: E402
import pytest  # noqa: E402

from .conftest import require  # noqa: E402

trl = require("trl", "trl")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from dvao_cli import compute_advantages  # noqa: E402
from dvao_cli.errors import UsageError  # noqa: E402
from dvao_cli.integrations.metrics import objective_metrics  # noqa: E402
from dvao_cli.integrations.trl import DVAOGRPOTrainer, DvaoMonitor, TRLInternalsError  # noqa: E402

G = 4  # num_generations
REWARDS = ["accuracy", "brevity", "style"]  # TRL names reward functions by __name__


def accuracy(completions: list[str], **kwargs) -> list[float]:
    return [1.0 if "a" in c else 0.0 for c in completions]


def brevity(completions: list[str], **kwargs) -> list[float]:
    return [max(0.0, 1.0 - len(c) / 6) for c in completions]


def style(completions: list[str], **kwargs) -> list[float | None]:
    # None for every third completion: TRL makes it NaN and skips it
    return [None if i % 3 == 0 else float(c[:1] in "abc") for i, c in enumerate(completions)]


def tokenizer() -> PreTrainedTokenizerFast:
    chars = list("abcdefgh ")
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", *chars])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(  # no token_type_ids, as a causal LM's tokenizer
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )


def model(tok: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    return Qwen2ForCausalLM(config)


def config(tmp_path, **overrides) -> GRPOConfig:
    args = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_generations=G,
        max_completion_length=6,
        max_steps=3,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        seed=0,
        reward_weights=[0.5, 0.3, 0.2],
    )
    args.update(overrides)
    return GRPOConfig(**args)


def probed(base: type[GRPOTrainer]) -> type[GRPOTrainer]:
    """`base` recording the gathered rewards of each generation and what each loss consumed."""

    class Probe(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.generated: list[torch.Tensor] = []  # per generation: gathered rewards (N, K)
            self.consumed: list[tuple[torch.Tensor, torch.Tensor]] = []  # (row tags, advantages)

        def _calculate_rewards(self, *args, **kwargs):
            rewards = super()._calculate_rewards(*args, **kwargs)
            self.generated.append(rewards.clone())
            return rewards

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            n = output["advantages"].shape[0]  # this process's rows of the N gathered
            start = (len(self.generated) - 1) * self.generated[-1].shape[0]
            start += self.accelerator.process_index * n
            # the row in all generations' gathered rewards; TRL shuffles and splits every tensor
            # of the dict in unison
            output["probe_row"] = torch.arange(n) + start
            return output

        def _compute_loss(self, model, inputs):
            self.consumed.append((inputs["probe_row"].clone(), inputs["advantages"].clone()))
            return super()._compute_loss(model, inputs)

    return Probe


def make(tmp_path, base=DVAOGRPOTrainer, args=None, **kwargs):
    """A probed `base` on 8 prompts (also the eval set) with the tiny model."""
    tok = tokenizer()
    prompts = Dataset.from_dict({"prompt": ["ab", "cd", "ef", "gh", "ba", "dc", "fe", "hg"]})
    return probed(base)(
        model=model(tok),
        reward_funcs=[accuracy, brevity, style],
        args=args or config(tmp_path),
        train_dataset=prompts,
        eval_dataset=prompts,
        processing_class=tok,
        **kwargs,
    )


def run(tmp_path, base=DVAOGRPOTrainer, monitor=False, args=None, **kwargs):
    trainer = make(tmp_path, base, args, **kwargs)
    if monitor:
        trainer.add_callback(DvaoMonitor(trainer))
    trainer.train()
    return trainer


def engine(trainer, rewards: torch.Tensor, scheme: str, ddof: int, eps: float):
    """The engine's result for one generation's gathered rewards, with TRL's weights as TRL
    holds them (float32: 0.3 is not 0.3)."""
    return compute_advantages(
        rewards,
        torch.arange(rewards.shape[0]) // G,
        weights=trainer.reward_weights,
        schemes=(scheme,),
        ddof=ddof,
        eps=eps,
        nan="ignore",
        device=rewards.device,
    )


def consumed(trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row the loss consumed, in generation order: (advantages (R,), rows (R,))."""
    rows = torch.cat([r for r, _ in trainer.consumed])
    advantages = torch.cat([a for _, a in trainer.consumed])
    order = torch.argsort(rows)
    return advantages[order], rows[order]


def expected(trainer, scheme: str, ddof: int, eps: float) -> torch.Tensor:
    """The engine's advantages of every generation, concatenated (float32, as TRL trains)."""
    return torch.cat(
        [engine(trainer, r, scheme, ddof, eps).advantages[scheme] for r in trainer.generated]
    ).to(torch.float32)


def dvao_logs(trainer) -> list[dict]:
    return [e for e in trainer.state.log_history if f"dvao/weight/{REWARDS[0]}" in e]


def check_metrics(trainer, ddof: int) -> None:
    """One `dvao/...` report per generation, equal to the engine's statistics of its rewards."""
    logs = dvao_logs(trainer)
    assert len(logs) == len(trainer.generated) >= 2
    for entry, rewards in zip(logs, trainer.generated, strict=True):
        stats = engine(trainer, rewards, "dvao", ddof, 0.0).stats
        want = objective_metrics(stats, REWARDS, rewards)
        assert f"dvao/all_pass/{REWARDS[0]}" in want  # accuracy is binary
        assert f"dvao/all_pass/{REWARDS[1]}" not in want  # brevity is not
        assert {k: entry[k] for k in want} == pytest.approx(want, abs=1e-12)
        assert entry[f"rewards/{REWARDS[0]}/mean"] is not None  # TRL's own metrics still there


def test_dvao_trainer_trains_on_the_engine_advantages(tmp_path) -> None:
    # steps_per_generation=2: one generation of 2 prompts x 4 feeds two optimizer steps
    args = config(
        tmp_path,
        per_device_train_batch_size=4,
        steps_per_generation=2,
        max_steps=4,
        log_completions=True,
        num_completions_to_print=0,
    )
    trainer = run(tmp_path, args=args)
    rewards = torch.cat(trainer.generated)
    assert rewards.shape == (16, 3)
    assert torch.isnan(rewards[:, 2]).any() and not torch.isnan(rewards[:, :2]).any()

    got, rows = consumed(trainer)
    assert torch.equal(rows, torch.arange(16))  # every completion trained on exactly once
    want = expected(trainer, "dvao", 0, 0.0)
    assert torch.equal(got, want)

    # by hand: sum_k w_k (r_k - mu_k) / sum_l w_l sigma_l, population std, None skipped
    w = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    for g, block in enumerate(rewards.double().view(-1, G, 3)):
        mu = block.nanmean(0)
        sigma = ((block - mu) ** 2).nanmean(0).sqrt()
        num = ((block - mu).nan_to_num(0.0) * w).sum(1)
        denom = (w * sigma).sum()
        by_hand = num / denom if denom > 0 else torch.zeros(G, dtype=torch.float64)
        assert got[g * G : (g + 1) * G].double() == pytest.approx(by_hand.tolist(), abs=1e-6)

    # the completions table shows the advantage trained on
    files = sorted((tmp_path / "completions").glob("completions_*.parquet"))
    assert len(files) == 4  # one per logged step: steps 1-2 show generation 0, 3-4 generation 1
    for step, path in enumerate(files):
        table = pl.read_parquet(path)
        generation = step // 2
        assert table["advantage"].to_list() == want[generation * 8 : (generation + 1) * 8].tolist()
        assert table.columns[3:6] == REWARDS
    check_metrics(trainer, ddof=0)


@pytest.mark.parametrize(
    ("scheme", "trl_setting"),
    [
        ("gdpo", {"scale_rewards": "none"}),
        ("rc", {"multi_objective_aggregation": "normalize_then_sum"}),
    ],
)
def test_other_schemes_train_and_trl_aggregation_is_ignored(
    tmp_path, scheme: str, trl_setting: dict
) -> None:
    args = config(tmp_path, **trl_setting)
    ((setting, value),) = trl_setting.items()
    with pytest.warns(UserWarning, match=f"{setting}='{value}' only shapes TRL's own"):
        trainer = run(tmp_path, args=args, scheme=scheme, ddof=1, eps=1e-4)
    got, rows = consumed(trainer)
    assert torch.equal(rows, torch.arange(24))
    assert torch.equal(got, expected(trainer, scheme, 1, 1e-4))
    check_metrics(trainer, ddof=1)


@pytest.mark.parametrize(
    ("aggregation", "scheme"), [("sum_then_normalize", "rc"), ("normalize_then_sum", "gdpo")]
)
def test_monitor_logs_metrics_and_leaves_trl_advantages_alone(
    tmp_path, aggregation: str, scheme: str
) -> None:
    args = config(tmp_path, multi_objective_aggregation=aggregation)
    trainer = run(tmp_path, base=GRPOTrainer, monitor=True, args=args)
    got, rows = consumed(trainer)
    assert torch.equal(rows, torch.arange(24))
    # TRL's own advantages: the engine's RC (TRL's default) or GDPO with TRL's conventions,
    # Bessel std + 1e-4, to float32 rounding (TRL computes in float32)
    want = expected(trainer, scheme, 1, 1e-4)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, expected(trainer, "dvao", 0, 0.0))
    check_metrics(trainer, ddof=0)


def test_evaluation_uses_the_engine_and_logs_eval_metrics(tmp_path) -> None:
    # 8 prompts x 4 in 2 eval batches of 16 rows, each scored on its own; 16 > the log's
    # maxlen (the generation batch, 8), so the completions log keeps the last 8
    trainer = make(tmp_path, args=config(tmp_path, per_device_eval_batch_size=16))
    trainer.evaluate()
    assert [r.shape for r in trainer.generated] == [(16, 3)] * 2
    got, rows = consumed(trainer)
    assert torch.equal(rows, torch.arange(32))
    want = expected(trainer, "dvao", 0, 0.0)
    assert torch.equal(got, want)
    assert list(trainer._logs["advantages"]) == want[-8:].tolist()
    per_batch = [
        objective_metrics(engine(trainer, r, "dvao", 0, 0.0).stats, REWARDS, r)
        for r in trainer.generated
    ]
    logged = trainer.state.log_history[-1]
    for key in per_batch[0]:  # TRL's log() averages the batches' values
        assert logged[f"eval_{key}"] == pytest.approx(sum(m[key] for m in per_batch) / 2)


def test_bad_arguments_fail_at_construction(tmp_path) -> None:
    with pytest.raises(UsageError, match="unknown scheme 'dvoa' \\(did you mean 'dvao'\\?\\)"):
        DVAOGRPOTrainer(model="never-loaded", scheme="dvoa")  # before any model loads
    with pytest.raises(UsageError, match="^ddof: ddof must be an integer >= 0, got -1"):
        make(tmp_path, ddof=-1)
    with pytest.raises(UsageError, match="^eps: eps must be a finite number >= 0, got -0.1"):
        make(tmp_path, eps=-0.1)
    with pytest.raises(UsageError, match="^ddof: ddof must be an integer >= 0"):
        DvaoMonitor(make(tmp_path, GRPOTrainer), ddof=-1)
    args = config(tmp_path, reward_weights=[1.0, -1.0, 1.0])
    with pytest.raises(UsageError, match="reward_weights: weights must be finite and >= 0, got -1"):
        make(tmp_path, args=args)


@pytest.mark.parametrize("ddof", [G, G + 3])
def test_ddof_at_or_above_num_generations_fails_at_construction(tmp_path, ddof: int) -> None:
    # every within-group std would be 0 and every advantage 0: the run would train on nothing
    with pytest.raises(UsageError, match=f"^ddof={ddof} with num_generations={G}: ") as info:
        make(tmp_path, ddof=ddof)
    assert "train on nothing" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError, match=f"^ddof={ddof} with num_generations={G}"):
        DvaoMonitor(make(tmp_path, GRPOTrainer), ddof=ddof)
    make(tmp_path, ddof=G - 1)  # the largest that leaves a std


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1e-320, 1e-320, 1e-320], "weights: 1e-320 is too small to compute with"),
        ([1.0, 1e-40, 1.0], "weights: 1e-40 is too small to compute with"),
        ([0.0, 0.0, 0.0], "weights are all 0: every weighted advantage would be 0"),
        ([1.0, float("nan"), 1.0], "weights must be finite and >= 0, got nan"),
    ],
)
def test_weights_that_cannot_train_fail_at_construction(tmp_path, weights, message) -> None:
    args = config(tmp_path, reward_weights=weights)
    with pytest.raises(UsageError, match=f"^GRPOConfig.reward_weights: {message}"):
        make(tmp_path, args=args)


def test_supported_version_imports_without_a_warning() -> None:
    from dvao_cli.integrations.versions import supported

    assert supported("trl", trl.__version__)
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    import dvao_cli.integrations.trl\n"
        "print([str(w.message) for w in seen if 'dvao' in str(w.message)])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_unexpected_trl_internals_fail_loudly(tmp_path) -> None:
    # a TRL whose _generate_and_score_completions no longer calls _calculate_rewards
    trainer = make(tmp_path, args=config(tmp_path, max_steps=1))
    trainer._calculate_rewards = GRPOTrainer._calculate_rewards.__get__(trainer)
    with pytest.raises(TRLInternalsError, match="called _calculate_rewards 0 times, expected once"):
        trainer.train()


def test_each_process_trains_on_its_slice(tmp_path) -> None:
    # two CPU processes; each prompt's generations straddle them, so the groups only exist in
    # the gathered rewards
    script = Path(__file__).with_name("trl_two_processes.py")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DVAO_INTEGRATION": "trl"}
    done = subprocess.run(
        [*launch, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0: ok" in done.stdout and "rank 1: ok" in done.stdout
