"""Emulated Kubernetes HPA and KEDA control loops: a pure core plus a thin driver."""
