"""Seeded deterministic simulator of the consensus core (``python -m tests.sim``).

See docs/consensus.md for the fault model and how to replay a seed.
"""
