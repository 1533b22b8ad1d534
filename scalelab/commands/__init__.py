"""CLI subcommands: one module each, exposing ``register(subparsers)``.

The module registers its parser and sets ``func`` (called with the parsed args; returns
an exit code). ``scalelab.cli`` discovers every module here, so adding a command means
adding a file (the one extension point).
"""
