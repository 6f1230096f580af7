"""Fidelity to the real service: the recording proxy, recordings, replay, drift detection,
the canary, contract diffs and response conformance."""
