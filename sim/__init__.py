"""Gymnasium environments that need memory (registered under the ``dnc/`` namespace)."""
