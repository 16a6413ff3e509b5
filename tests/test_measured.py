"""The logic of "auto"'s measured choice, with a stand-in timer (the real one needs CUDA events)."""
import pytest

from replk_ops.backends import measured


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    measured.forget()
    monkeypatch.delenv(measured.ENV_VAR, raising=False)
    yield
    measured.forget()


def _timer(times, calls):
    def fake_time(run):
        name = run()
        calls.append(name)
        if isinstance(times[name], Exception):
            raise times[name]
        return times[name]
    return fake_time


def test_picks_the_fastest_once_and_remembers(monkeypatch):
    calls = []
    monkeypatch.setattr(measured, "_time", _timer({"cuda": 2.0, "triton": 1.0, "reference": 3.0}, calls))
    key = ("cuda:0", "fwd", "k")
    assert measured.choose(key, ["cuda", "triton", "reference"], lambda name: name) == "triton"
    assert measured.choose(key, ["cuda", "triton", "reference"], lambda name: name) == "triton"
    assert calls == ["cuda", "triton", "reference"]  # measured once
    remembered = measured.remembered(key)
    assert remembered.milliseconds == {"cuda": 2.0, "triton": 1.0, "reference": 3.0}
    assert "triton 1.000 ms" in str(remembered)


def test_a_failing_candidate_is_not_chosen(monkeypatch):
    monkeypatch.setattr(measured, "_time", _timer({"cuda": RuntimeError("launch failed"), "triton": 5.0}, []))
    assert measured.choose(("k",), ["cuda", "triton"], lambda name: name) == "triton"


def test_nothing_chosen_when_every_candidate_fails(monkeypatch):
    monkeypatch.setattr(measured, "_time", _timer({"cuda": RuntimeError("a"), "triton": ValueError("b")}, []))
    assert measured.choose(("k",), ["cuda", "triton"], lambda name: name) is None
    assert measured.remembered(("k",)) is None


def test_measuring_can_be_switched_off(monkeypatch):
    calls = []
    monkeypatch.setattr(measured, "_time", _timer({"cuda": 1.0, "triton": 2.0}, calls))
    monkeypatch.setenv(measured.ENV_VAR, "0")
    assert measured.choose(("k",), ["cuda", "triton"], lambda name: name) is None
    assert calls == []


def test_no_choice_by_timing_under_deterministic_algorithms(monkeypatch):
    """A choice by timing can differ between processes, and with it the last bits of results."""
    import torch

    calls = []
    monkeypatch.setattr(measured, "_time", _timer({"cuda": 1.0, "triton": 2.0}, calls))
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    assert measured.choose(("k",), ["cuda", "triton"], lambda name: name) is None
    assert calls == [] and measured.remembered(("k",)) is None


def test_kinds_split_small_from_large_batches_only():
    import torch

    weight = torch.empty(4, 1, 7, 7)
    kind = lambda n, h=28: measured.kind("fwd", torch.empty(n, 4, h, h), weight)  # noqa: E731
    assert kind(1) == kind(measured.SMALL_BATCH - 1)       # every small batch shares one measurement
    assert kind(measured.SMALL_BATCH) == kind(256)         # and every large one another
    assert kind(1) != kind(64)
    assert kind(64, 28) == kind(64, 30) != kind(64, 56)    # map sizes by power-of-two class
