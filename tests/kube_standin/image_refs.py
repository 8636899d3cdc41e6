"""Image references as the kubelet parses them before it pulls (``applyDefaultImageTag`` in
pkg/kubelet/images/image_manager.go, with ``ParseNormalizedNamed`` of
github.com/distribution/reference): a reference it cannot parse leaves the container waiting
with ``InvalidImageName`` for ever, whatever the registry holds."""

from __future__ import annotations

import re

_ALPHANUMERIC = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:(?:[._]|__|[-]+){_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$")
"""``ReferenceRegexp`` of distribution/reference's regexp.go."""
IDENTIFIER = re.compile(r"^[a-f0-9]{64}$")


def _split_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain``: the registry and the rest, Docker Hub's ``library/`` for one name."""
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = "docker.io", name
    else:
        domain, remainder = first, rest
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def parse_error(image: str) -> str | None:
    """Why ``ParseNormalizedNamed`` refuses ``image``, in its words; None for a valid reference."""
    if IDENTIFIER.match(image):
        return f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings"
    domain, remote = _split_domain(image)
    name = remote.split(":", 1)[0]
    if name.lower() != name:
        return f"invalid reference format: repository name ({name}) must be lowercase"
    if not REFERENCE.match(f"{domain}/{remote}"):
        return "invalid reference format"
    return None


def invalid_image_message(image: str) -> str | None:
    """The message of a container waiting with ``InvalidImageName`` for ``image``; None when the
    kubelet can parse it."""
    error = parse_error(image)
    if error is None:
        return None
    return f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {error}'
