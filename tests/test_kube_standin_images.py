"""The stand-in kubelet parses image references as the kubelet does before it pulls
(``applyDefaultImageTag``, distribution/reference's ``ParseNormalizedNamed``): the words of a
reference it refuses are those a real kubelet's ``InvalidImageName`` carries."""

from __future__ import annotations

import pytest
from kube_standin.image_refs import invalid_image_message


@pytest.mark.parametrize("image", ["python:3.12", "registry.example.com/team/trainer:v2", "localhost:5000/a/b",
                                   "ghcr.io/org/app@sha256:" + "a" * 64, "busybox", "my_org/my-app__x:1.0-rc.1"])
def test_a_valid_reference_is_pulled(image: str):
    assert invalid_image_message(image) is None


@pytest.mark.parametrize(("image", "error"), [
    ("THIS IS NOT A VALID IMAGE REFERENCE!!",
     "invalid reference format: repository name (library/THIS IS NOT A VALID IMAGE REFERENCE!!) must be lowercase"),
    ("hfhugs/unsloth-gemma-3-4b-it-GGUF:Q4_K_XL",
     "invalid reference format: repository name (hfhugs/unsloth-gemma-3-4b-it-GGUF) must be lowercase"),
    ("registry.hub.docker.com/library//nginx:latest", "invalid reference format"),
    ("python:3.12:latest", "invalid reference format"),
])
def test_an_unparsable_reference_gives_the_kubelets_words(image: str, error: str):
    """Messages as real kubelets printed them (their pod events, quoted in public write-ups)."""
    assert invalid_image_message(image) == \
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {error}'
