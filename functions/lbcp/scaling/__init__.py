"""Autoscaling: pure policies, the shared guards, the scale-in victim, warming and the scaler run.

Everything here except ``run`` is pure: time, metrics and randomness are inputs.
"""
