"""Code shared by the API and the agent: task schema, queue declaration, env config.

Nothing here imports ``scalelab``: the service images ship only ``services/``.
"""
