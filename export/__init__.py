"""SavedModel export of DRAW models for TF Serving and other TF code."""
