"""The planner's logic on CPU: rules, measuring once per kind, the cache, and what explain says.
Timings are stand-ins where the choice itself is under test."""
import threading
import time

import pytest
import torch
import torch.nn.functional as F

import replk_ops
from replk_ops import catalog, measure, planner
from replk_ops.planner import Problem


@pytest.fixture(autouse=True)
def _fresh():
    replk_ops.reset()
    yield
    replk_ops.reset()


def problem(layout="nchw", k=(9, 9), dtype=torch.float32, small_batch=True, hw=(16, 16), deterministic=False):
    return Problem("cpu", dtype, layout, small_batch, 4, hw[0], hw[1], k[0], k[1], k[0] // 2, k[1] // 2,
                   deterministic)


def fake_timer(times, calls):
    """Stands in for measure._time_cpu: each run returns its implementation's name, timed from
    ``times`` (an exception there: the candidate fails, and is left out)."""
    def timer(runs):
        measured = {}
        for name, run in runs.items():
            calls.append(run())
            if not isinstance(times[name], Exception):
                measured[name] = times[name]
        return measured
    return timer


@pytest.fixture
def timed(monkeypatch):
    """Make the named implementations' passes return their names, and time them from a table."""
    calls = []

    def install(times):
        monkeypatch.setattr(measure, "pass_runner", lambda problem, pass_name, impl, tensors: (lambda: impl.name))
        monkeypatch.setattr(measure, "_time_cpu", fake_timer(times, calls))
        return calls
    return install


def test_measures_once_per_kind_and_remembers(timed):
    calls = timed({"torch": 2.0, "direct": 1.0})
    first = planner.plan_pass(problem(), "bwd_input")
    assert first.implementation.name == "direct" and "direct 1.000 ms" in first.how
    assert planner.plan_pass(problem(), "bwd_input") is first
    # another channel count and a map of the same power-of-two class are the same kind
    other = problem(hw=(13, 15))._replace(channels=64)
    assert planner.plan_pass(other, "bwd_input").implementation.name == "direct"
    assert calls == ["torch", "direct"]


def test_small_and_large_batches_measure_apart(timed):
    calls = timed({"torch": 2.0, "direct": 1.0})
    planner.plan_pass(problem(small_batch=True), "bwd_input")
    planner.plan_pass(problem(small_batch=False), "bwd_input")
    assert len(calls) == 4


def test_a_failing_candidate_is_not_chosen(timed):
    timed({"torch": RuntimeError("boom"), "direct": 5.0})
    assert planner.plan_pass(problem(), "bwd_weight").implementation.name == "direct"


def test_every_candidate_failing_falls_back_to_priority(timed):
    timed({"torch": RuntimeError("a"), "direct": ValueError("b")})
    choice = planner.plan_pass(problem(), "bwd_input")
    assert choice.implementation.name == "torch" and "every candidate failed" in choice.how


def test_rules_settle_without_measuring(timed):
    calls = timed({"torch": 1.0, "direct": 2.0})
    # on a 10x10 map the kernel reaches 100 taps: too few for fft, which is measured otherwise
    square = planner.plan_pass(problem(k=(31, 31), hw=(10, 10)), "fwd")
    assert square.implementation.name == "direct" and "naive loop" in square.how
    channels_last = planner.plan_pass(problem(layout="channels_last", k=(31, 31), hw=(10, 10)), "fwd")
    assert channels_last.implementation.name == "torch" and channels_last.how.startswith("by rule")
    assert calls == []


def test_nchw_forward_is_ruled_by_the_kernel_width(timed):
    """oneDNN's NCHW kernel takes 51x5 (PyTorch's own call wins) but not 5x51 (a naive loop)."""
    calls = timed({"torch": 2.0, "direct": 1.0})
    narrow = planner.plan_pass(problem(k=(51, 5)), "fwd")
    assert narrow.implementation.name == "torch" and narrow.how.startswith("by rule")
    wide = planner.plan_pass(problem(k=(5, 51)), "fwd")
    assert wide.implementation.name == "direct" and "naive loop" in wide.how
    assert calls == []


def test_narrow_kernels_backward_is_measured_not_ruled(timed):
    calls = timed({"torch": 1.0, "direct": 2.0})
    assert planner.plan_pass(problem(k=(51, 5)), "bwd_input").implementation.name == "torch"
    assert calls == ["torch", "direct"]


def test_no_measuring_when_switched_off_or_deterministic(timed, planner_env):
    calls = timed({"torch": 2.0, "direct": 1.0})
    choice = planner.plan_pass(problem(deterministic=True), "bwd_input")
    assert "deterministic" in choice.how and choice.implementation.name == "torch"
    planner_env(planner.AUTOTUNE_ENV, "0")
    choice = planner.plan_pass(problem(k=(15, 3)), "bwd_weight")
    assert "REPLK_OPS_AUTOTUNE=0" in choice.how and choice.implementation.name == "direct"
    assert calls == []


def test_explain_never_measures_and_then_shows_the_measurement(timed):
    calls = timed({"torch": 2.0, "direct": 1.0})
    # a half-precision channels_last forward: no rule settles it
    x = torch.randn(1, 4, 16, 16, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 1, 9, 9, dtype=torch.bfloat16)
    before = replk_ops.explain(x, w)
    assert "until the first fwd call of this kind times torch, direct" in str(before)
    assert calls == []
    replk_ops.dwconv2d(x, w)
    after = replk_ops.explain(x, w)
    assert after.backend == "direct" and "measured on first use" in after.reasons["direct"]
    assert after.reasons["torch"] == "available; slower in the measurement"


def test_requested_backend_that_cannot_run_raises_with_the_reason():
    with pytest.raises(RuntimeError, match="'cuda' cannot run this call: .*CUDA tensors"):
        planner.plan_pass(problem(), "fwd", "cuda")
    with pytest.raises(RuntimeError, match="'triton' cannot run this call: .*float64"):
        planner.plan_pass(problem(dtype=torch.float64), "fwd", "triton")


def test_every_catalogue_entry_is_explained():
    report = planner.plan(problem())
    for pass_name, choice in report.choices.items():
        names = {impl.name for impl in catalog.for_pass(pass_name)}
        assert {choice.implementation.name} | {name for name, _ in choice.rejected} == names


def test_steady_state_call_is_cached():
    """The second call of a signature builds nothing: it reuses the ready call."""
    from replk_ops import ready_calls

    x, w = torch.randn(1, 4, 16, 16), torch.randn(4, 1, 31, 31)
    replk_ops.dwconv2d(x, w)
    size = len(ready_calls._CALLS)
    for _ in range(3):
        replk_ops.dwconv2d(x, w)
    assert len(ready_calls._CALLS) == size
    replk_ops.reset()
    assert len(ready_calls._CALLS) == 0


def test_all_torch_plan_is_nn_conv2d_itself(timed):
    """Where PyTorch's own path wins every pass, the call is F.conv2d with PyTorch's backward."""
    timed({"torch": 1.0, "direct": 2.0})
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    w = torch.randn(4, 1, 9, 9, requires_grad=True)
    y = replk_ops.dwconv2d(x, w)
    assert "Convolution" in type(y.grad_fn).__name__
    torch.testing.assert_close(y, F.conv2d(x, w, padding=4, groups=4))


def test_mixed_plan_runs_the_planned_passes(timed):
    timed({"torch": 1.0, "direct": 2.0})
    # fwd by rule: direct (on a 10x10 map the kernel reaches too few taps for fft)
    x = torch.randn(2, 4, 10, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 31, 31, dtype=torch.float64, requires_grad=True)
    y = replk_ops.dwconv2d(x, w)
    assert "PlannedStep" in type(y.grad_fn).__name__
    y.sum().backward()
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    F.conv2d(x2, w2, padding=15, groups=4).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_concurrent_first_calls_measure_once(monkeypatch):
    calls = []
    lock = threading.Lock()

    def timer(runs):
        with lock:
            calls.extend(run() for run in runs.values())
        return {name: 1.0 for name in runs}
    monkeypatch.setattr(measure, "pass_runner", lambda problem, pass_name, impl, tensors: (lambda: impl.name))
    monkeypatch.setattr(measure, "_time_cpu", timer)
    results = []
    threads = [threading.Thread(target=lambda: results.append(planner.plan_pass(problem(), "bwd_input")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 2 and len({r.implementation.name for r in results}) == 1


def test_cpu_timing_takes_turns_and_drops_clear_losers(monkeypatch):
    """The real timer on a fake clock (so a busy machine cannot change the outcome): candidates
    alternate round by round; a candidate 4x slower than the best stops running; one that raises
    is left out."""
    order, now = [], [0.0]
    monkeypatch.setattr(measure, "_clock", lambda: now[0])

    def spin(name, seconds):
        def run():
            order.append(name)
            now[0] += seconds
        return run

    def broken():
        raise RuntimeError("no kernel")

    times = measure._time_cpu({"fast": spin("fast", 1e-4), "slow": spin("slow", 2e-3), "broken": broken})
    assert times == {"fast": pytest.approx(0.1), "slow": pytest.approx(2.0)}  # milliseconds
    assert order[:4] == ["fast", "slow", "fast", "slow"]     # warm-up, then turns
    assert order.count("slow") == 2 and order.count("fast") >= measure.CPU_MIN_ROUNDS


def test_a_cuda_call_reports_a_missing_extension_once(monkeypatch, planner_env):
    """Users never see pip's build log: the planner's first CUDA problem asks the extension status
    to warn (it does so once, and only where a GPU is present)."""
    from replk_ops.backends.cuda import loader as _extension

    calls = []
    monkeypatch.setattr(_extension, "warn_once_if_missing", lambda: calls.append(1))
    planner_env(planner.AUTOTUNE_ENV, "0")
    cuda_problem = problem()._replace(device="cuda:0")
    planner.plan_pass(cuda_problem, "fwd")
    planner.plan_pass(problem(), "fwd")
    assert calls == [1]


def test_an_implementation_runs_only_the_ranks_it_declares():
    """A rank is a capability each catalogue entry declares (a 3-D one with its 3-D runner): a
    problem of a rank it does not declare is rejected first, with the reason."""

    class Problem3d(Problem):
        @property
        def rank(self):
            return 3

    three_d = set()
    for impl in catalog.implementations():
        assert 2 in impl.ranks
        if 3 in impl.ranks:
            three_d.add(impl.backend)
            assert impl.runner_for(3) is impl.runner3d is not None
        else:
            assert impl.rejection(Problem3d(*problem()), "fwd") == "runs 2-D convolutions only, got a 3-D one"
    assert three_d == {"torch", "direct", "cpp", "fft"}  # the CUDA kernels and Triton are 2-D only
    assert catalog.by_name("torch").rejection(problem(), "fwd") is None
