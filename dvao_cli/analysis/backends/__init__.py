"""The analysis backends: ways to compute the same per-step figures."""
