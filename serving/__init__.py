"""Serving DRAW: TF Serving configuration, a client, a Session predictor."""
