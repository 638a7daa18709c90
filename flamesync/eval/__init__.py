"""Evaluation: lip-sync metrics and the runners that score a system on real and synthetic speech."""
