"""URLs as katuna quotes them in an error, a refusal or a retry line: without the user and
password their authority may carry (``https://***@host``). An endpoint's URL (``AWS_ENDPOINT_URL``,
the provisioning script's ``--endpoint``, ``KATUNA_GKE_ENDPOINT``) may hold them, and a cloud's
client quotes it whole when it cannot connect (botocore's ``Could not connect to the endpoint
URL``): neither cloud's client signs in with them, so they are nothing to print.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s\"'?#]*@")
"""A URL's scheme, then its user and password up to the last ``@`` of its authority."""


def without_userinfo(text: str) -> str:
    """``text`` with the user and password of each URL in it masked (``http://***@host``)."""
    return _USERINFO.sub(r"\1***@", text)
