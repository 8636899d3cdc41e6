"""moto's Auto Scaling, taught the bounds AWS puts on an Auto Scaling group's tags, which moto
does not check.

``CreateOrUpdateTags`` takes "one or more tags" of the Auto Scaling group a tag's ``ResourceId``
names, its ``ResourceType`` ``auto-scaling-group`` ("the only supported value", the API
reference's ``Tag``); and "the maximum number of tags per resource is 50", "the maximum number
of tags that you can add or remove using a single call is 25" (the Amazon EC2 Auto Scaling User
Guide, "Tag Auto Scaling groups and instances"). moto takes any number, of any type, and fails
with a server error on a group it does not have. :func:`teach` makes it refuse each: the codes
are the API's (``ValidationError``, and ``LimitExceeded`` for a group past its 50 tags, the
fault ``CreateOrUpdateTags`` lists for a limit reached); the messages are the stand-in's own.
A key given again replaces its tag (the API reference), so counts only new keys.

``SetDesiredCapacity`` (what the cluster autoscaler calls to scale a group up) takes a capacity
"greater than or equal to the minimum size of the group and less than or equal to the maximum
size" (the API reference's ``DesiredCapacity``), of a group AWS has: moto takes any, and fails
with a server error on a group it does not have. :func:`teach` makes it refuse both with
``ValidationError``, in words of the stand-in's own.

Taught by :func:`moto_eks.teach`, in this process and in moto's server it runs.
"""

from __future__ import annotations

from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend

TAGS_PER_GROUP = 50
TAGS_PER_CALL = 25


def _create_or_update_tags(answer: Any) -> Any:
    def create_or_update_tags(self: AutoScalingBackend, tags: list[dict[str, Any]]) -> None:
        if not tags or len(tags) > TAGS_PER_CALL:
            raise ValidationError(f"CreateOrUpdateTags takes 1 to {TAGS_PER_CALL} tags in one call; {len(tags)} "
                                  "were given")
        added: dict[str, set[str]] = {}
        for tag in tags:
            group = self.autoscaling_groups.get(tag.get("ResourceId") or "")
            if tag.get("ResourceType") != "auto-scaling-group" or group is None:
                raise ValidationError(f"No Auto Scaling group {tag.get('ResourceId')!r} (ResourceType "
                                      f"{tag.get('ResourceType')!r}) to tag")
            if not tag.get("Key") or len(tag["Key"]) > 128 or len(tag.get("Value") or "") > 256:
                raise ValidationError("A tag's key must be 1 to 128 characters and its value at most 256")
            added.setdefault(group.name, {t["Key"] for t in group.tags}).add(tag["Key"])
        for name, keys in added.items():
            if len(keys) > TAGS_PER_GROUP:
                raise AutoscalingClientError("LimitExceeded", f"Auto Scaling group {name} would have {len(keys)} tags; "
                                                              f"a group may have at most {TAGS_PER_GROUP}")
        answer(self, tags)

    return create_or_update_tags


def _set_desired_capacity(answer: Any) -> Any:
    def set_desired_capacity(self: AutoScalingBackend, group_name: str, desired_capacity: int | None) -> None:
        group = self.autoscaling_groups.get(group_name)
        if group is None:
            raise ValidationError(f"No Auto Scaling group {group_name!r} to set the desired capacity of")
        if desired_capacity is not None and not group.min_size <= desired_capacity <= group.max_size:
            raise ValidationError(f"Desired capacity {desired_capacity} of Auto Scaling group {group_name} is outside "
                                  f"its sizes {group.min_size} to {group.max_size}")
        answer(self, group_name, desired_capacity)

    return set_desired_capacity


def teach() -> None:
    """Make moto's Auto Scaling refuse tags past AWS's bounds and a desired capacity outside its
    group's sizes, in this process (once)."""
    if getattr(AutoScalingBackend.create_or_update_tags, "katuna_taught", False):
        return
    taught = _create_or_update_tags(AutoScalingBackend.create_or_update_tags)
    taught.katuna_taught = True  # type: ignore[attr-defined]
    AutoScalingBackend.create_or_update_tags = taught
    AutoScalingBackend.set_desired_capacity = _set_desired_capacity(AutoScalingBackend.set_desired_capacity)
