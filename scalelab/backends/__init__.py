"""Backends: where the stack runs. See ``base.Backend`` for the interface."""
