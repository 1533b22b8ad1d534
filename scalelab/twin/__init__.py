"""The digital twin (issue 14): a model of the stack calibrated from run records.

``workload``: what a scenario publishes, second by second, per tool. ``calibrate``: the
model's parameters, each read from a named run-record field. ``simulate``: a 1 s
discrete-time model of queue, pods and CPU that drives the same HPA and KEDA cores as the
live loop and ``scalelab replay``. ``compare``: a prediction against a real run.
``tune``: a grid search over a scaling object's parameters. See docs/twin.md.
"""
