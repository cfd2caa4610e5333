"""Kubernetes OpenAPI validation for tests, against one pinned Kubernetes version.

kubernetes-validate 1.37.0 ships the schemas of Kubernetes 1.25 to 1.37. jetscan's Jobs and
deploy/ manifests are checked against 1.33, the oldest release they are meant to run on, in
strict mode (unknown fields are errors), so nothing in them needs a newer cluster.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.33.0"


def validate(manifest: dict[str, Any]) -> None:
    """Raise kubernetes_validate.ValidationError (or SchemaNotFoundError) when invalid."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
