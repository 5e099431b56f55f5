"""Encoder metrics: discriminability and disentanglement (the EMF paper's protocols) and extras."""
