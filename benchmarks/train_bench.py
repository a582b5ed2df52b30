"""Benchmark `dvao train` against TRL 1.16 `GRPOTrainer` on the same tiny policy and batch.

The setting, both sides: a 2-layer, width-64, 4-head causal transformer over the character
vocabulary of `dvao train`, random init, 32 prompts x 8 completions per step, 6 new tokens,
one torch thread, the three `arithmetic` rewards (accuracy, format, length), learning rate 5e-4,
no KL term (TRL's default beta = 0). TRL's policy is a GPT-2 config model with a character
WordLevel tokenizer built in code (no downloads), trained with gradient checkpointing off (TRL's
default is on, which only slows it) and no logging of completions.

Each measurement is a process of its own, dvao and TRL alternating, so both see the same load:

    python benchmarks/train_bench.py --trl-python /work/venv-trlbench/bin/python
    python benchmarks/train_bench.py --trl-python ... --repeats 3 --steps 30 --device cuda

rollouts/s = completions sampled and trained on per second of the training loop, the first
step excluded (start-up, allocation); both sides count a step's 256 completions when it ends.
The load average (`/proc/loadavg`) is recorded beside each measurement. Prints a Markdown table
and writes the raw figures as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPTS, GROUP, NEW_TOKENS = 32, 8, 6

# argv: STEPS DEVICE OUT_DIR; prints one JSON line
DVAO_SIDE = """
import json, sys
import torch
torch.set_num_threads(1)
from dvao_cli.train.config import TrainConfig
from dvao_cli.train.loop import train_run
steps, device, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = TrainConfig(task="arithmetic", steps=steps, prompts_per_step=32, group_size=8,
                  sft_steps=0, layers=2, width=64, heads=4, max_new_tokens=6, lr=5e-4,
                  device=device, threads=1, checkpoint_every=10**9)
import time
ends = []  # (wall, CPU) clocks at each step's end
train_run(cfg, out, on_step=lambda row: ends.append((time.perf_counter(), time.process_time())))
print(json.dumps({"steps": len(ends) - 1, "seconds": ends[-1][0] - ends[0][0],
                  "cpu_seconds": ends[-1][1] - ends[0][1]}))
"""

# argv: STEPS DEVICE OUT_DIR; prints one JSON line
TRL_SIDE = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
from datasets import Dataset
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

steps, device, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
chars = "0123456789+-*= "  # dvao train's vocabulary, then its special tokens
vocab = {c: i for i, c in enumerate(chars)}
vocab.update({"<pad>": len(chars), "<bos>": len(chars) + 1, "<eos>": len(chars) + 2})
tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
tok.decoder = decoders.Fuse()  # characters back to one string, no spaces between
tokenizer = PreTrainedTokenizerFast(
    tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
    padding_side="left",
)
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(
    vocab_size=len(vocab), n_positions=32, n_embd=64, n_layer=2, n_head=4,
    bos_token_id=vocab["<bos>"], eos_token_id=vocab["<eos>"], pad_token_id=vocab["<pad>"],
))

import random
rng = random.Random(0)
pairs = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(32 * (steps + 2))]
data = Dataset.from_dict({"prompt": [f"{a}+{b}=" for a, b in pairs],
                          "answer": [str(a + b) for a, b in pairs]})

def accuracy(prompts, completions, answer, **kw):
    return [float(c == a) for c, a in zip(completions, answer)]
def format(prompts, completions, **kw):
    return [float(c.isdigit()) for c in completions]
def length(prompts, completions, **kw):
    return [float(len(c) <= 4) for c in completions]

ends = []
class Clock(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        ends.append((time.perf_counter(), time.process_time()))

config = GRPOConfig(
    output_dir=out, per_device_train_batch_size=256, num_generations=8,
    max_completion_length=6, learning_rate=5e-4, beta=0.0, max_steps=steps,
    logging_steps=10**6, save_strategy="no", report_to="none", use_cpu=device == "cpu",
    bf16=False, gradient_checkpointing=False, dataloader_num_workers=0, seed=0,
    disable_tqdm=True,
)
trainer = GRPOTrainer(model=model, reward_funcs=[accuracy, format, length], args=config,
                      train_dataset=data, processing_class=tokenizer, callbacks=[Clock()])
trainer.train()
print(json.dumps({"steps": len(ends) - 1, "seconds": ends[-1][0] - ends[0][0],
                  "cpu_seconds": ends[-1][1] - ends[0][1]}))
"""


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(python: str, code: str, steps: int, device: str, out: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    load_before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", code, str(steps), device, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"benchmark side failed ({python}):\n{proc.stderr[-3000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    figures = json.loads(last)
    return {
        "rollouts_per_s": figures["steps"] * PROMPTS * GROUP / figures["seconds"],
        "rollouts_per_cpu_s": figures["steps"] * PROMPTS * GROUP / figures["cpu_seconds"],
        "process_s": time.perf_counter() - t0,
        "load_before": load_before,
        "load_after": loadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trl-python", required=True, help="python of a venv with trl==1.16.0")
    parser.add_argument("--dvao-python", default=sys.executable)
    parser.add_argument("--steps", type=int, default=30, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per side")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dvao-train-bench"))
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    sides = {"dvao": (args.dvao_python, DVAO_SIDE), "trl": (args.trl_python, TRL_SIDE)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for i in range(args.repeats):
        for name, (python, code) in sides.items():
            figures = measure(python, code, args.steps, args.device, args.workdir / f"{name}-{i}")
            results[name].append(figures)
            print(
                f"{name} #{i + 1}: {figures['rollouts_per_s']:,.0f} rollouts/s "
                f"(load {figures['load_before']:.2f} -> {figures['load_after']:.2f})",
                file=sys.stderr,
                flush=True,
            )
    med = {n: statistics.median(r["rollouts_per_s"] for r in rs) for n, rs in results.items()}
    cpu = {n: statistics.median(r["rollouts_per_cpu_s"] for r in rs) for n, rs in results.items()}
    ratios = [
        d["rollouts_per_s"] / t["rollouts_per_s"]
        for d, t in zip(results["dvao"], results["trl"], strict=True)
    ]
    print(f"device {args.device}, {args.steps} steps x {PROMPTS} prompts x {GROUP} completions")
    print(
        "| side | rollouts/s, wall (median) | each run | rollouts per CPU second (median) "
        "| load average (before -> after) |"
    )
    print("|---|---|---|---|---|")
    for name, rs in results.items():
        each = ", ".join(f"{r['rollouts_per_s']:,.0f}" for r in rs)
        loads = ", ".join(f"{r['load_before']:.1f} -> {r['load_after']:.1f}" for r in rs)
        print(f"| {name} | {med[name]:,.0f} | {each} | {cpu[name]:,.0f} | {loads} |")
    print(
        f"dvao / trl: {med['dvao'] / med['trl']:.2f}x on the wall medians "
        f"({cpu['dvao'] / cpu['trl']:.2f}x per CPU second); paired runs "
        + ", ".join(f"{r:.2f}x" for r in ratios)
    )
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "steps": args.steps, **results}))


if __name__ == "__main__":
    main()
