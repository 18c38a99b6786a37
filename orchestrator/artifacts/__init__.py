"""Artifact stores: where checkpoints and other run outputs are kept."""
