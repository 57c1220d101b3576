"""Synthetic twins: seeded generators that write files in exactly the real formats.

Each generator records, beside its files, a ``twin.json`` with its parameters and,
where it knows the latent truth, the oracle AUC.
"""
