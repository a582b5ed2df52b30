"""`dvao train`: a tiny multi-reward GRPO trainer that writes dvao rollout logs.

Modules: `vocab` (characters), `model` (policy and batched KV-cache sampler), `tasks` (toy tasks
and their rewards), `rewards` (user `--reward module:function`), `config` (options), `loop` (the
warm start and the GRPO loop), `outputs` (rollout parts, metrics), `checkpoint`, `compare`.
"""
