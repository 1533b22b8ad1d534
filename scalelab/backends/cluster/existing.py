"""``--backend existing``: the current kubeconfig context."""

from __future__ import annotations

import logging
from typing import ClassVar

from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.render import image_ref
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
)

log = logging.getLogger(__name__)


class ExistingBackend(ClusterBackend):
    """The current kubeconfig context; images come from a registry (SCALELAB_IMAGE_PREFIX)."""

    name: ClassVar[str] = "existing"

    def _provision(self) -> None:
        # Fails fast with kubectl's own message when there is no usable context.
        done = self._kubectl("config", "current-context", timeout=30)
        log.info("existing cluster: context %s", self.cluster.context or done.stdout.strip())
        if not self.cluster.image_prefix:
            log.warning("SCALELAB_IMAGE_PREFIX is not set: the nodes must already have "
                        "%s and %s", image_ref(API_DEPLOYMENT), image_ref(AGENT_DEPLOYMENT))
