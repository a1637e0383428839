"""Rewrite methods that run on the LLM engine: one sub-package per method."""
