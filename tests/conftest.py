"""Shared test setup: every test runs in fast mode on the CPU unless it says otherwise."""
import os

os.environ.setdefault("GRADLAB_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
