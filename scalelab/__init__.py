"""scalelab: a harness for Kubernetes autoscaling experiments."""

__version__ = "0.1.0"
