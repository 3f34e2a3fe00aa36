"""Idempotent calls are sent once more when the replica dies; other calls are not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from percept.handles import Absent, TaggerHandles
from percept.retry import RetryingHandle, retry_idempotent


class FlakyMethod:
    def __init__(self, owner: FlakyHandle, name: str) -> None:
        self.owner, self.name = owner, name

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        self.owner.calls.append(self.name)

        async def run() -> Any:
            if self.owner.deaths > 0:
                self.owner.deaths -= 1
                raise ActorDiedError()
            return (self.name, args)

        return asyncio.ensure_future(run())


class FlakyHandle:
    def __init__(self, deaths: int) -> None:
        self.deaths = deaths
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> FlakyMethod:
        return FlakyMethod(self, name)


def test_an_idempotent_call_is_retried_once_on_a_dead_replica() -> None:
    handle = FlakyHandle(deaths=1)
    wrapped = RetryingHandle(handle, frozenset({"tag"}))
    assert asyncio.run(_call(lambda: wrapped.tag.remote(b"x", "image", 3))) == ("tag", (b"x", "image", 3))
    assert handle.calls == ["tag", "tag"]


def test_only_once_and_only_idempotent_methods() -> None:
    twice = FlakyHandle(deaths=2)
    with pytest.raises(ActorDiedError):
        asyncio.run(_call(lambda: RetryingHandle(twice, frozenset({"tag"})).tag.remote()))
    assert twice.calls == ["tag", "tag"]
    train = FlakyHandle(deaths=1)
    with pytest.raises(ActorDiedError):
        asyncio.run(_call(lambda: RetryingHandle(train, frozenset({"tag"})).train.remote()))
    assert train.calls == ["train"]


def test_groups_are_wrapped_by_deployment_key_and_absent_handles_left_alone() -> None:
    group = retry_idempotent(TaggerHandles(tagger_classifier=FlakyHandle(0)))  # type: ignore[arg-type]
    assert isinstance(group.tagger_classifier, RetryingHandle)
    assert isinstance(group.tagger_detector, Absent)


async def _call(make: Any) -> Any:
    return await make()
