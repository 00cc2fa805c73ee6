"""Module-scoped single-threaded torch for test files that run many tiny forwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch


def one_thread_fixture() -> Callable[[], Iterator[None]]:
    """An autouse, module-scoped fixture running the module's tests with one torch thread (tiny tensors: thread
    start-up costs more than the work, and a shared CI machine makes it worse). Assign it to a module attribute."""

    @pytest.fixture(autouse=True, scope="module")
    def one_thread() -> Iterator[None]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

    return one_thread
