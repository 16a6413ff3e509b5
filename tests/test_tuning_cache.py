"""The tuning cache on disk (replk_ops.cache): a second process reads what a first one wrote, any
change to a part of the key misses, broken files are ignored, and the planner and the Triton
tuner use it so that a later process neither measures nor tunes again. No GPU: CUDA problems are
stand-ins with fake timings. Also the cold start's bound: how many Triton variants the default
GPU bench compiles, counted from its shapes and the short lists."""
import json
import os
import subprocess
import sys
import threading

import pytest
import torch

import replk_ops
from replk_ops import cache, catalog, measure, planner
from replk_ops.cache import measurements
from replk_ops.planner import Problem


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.DIR_ENV, str(tmp_path))
    monkeypatch.delenv(cache.SWITCH_ENV, raising=False)
    return tmp_path


def _python(code, cache_dir):
    env = dict(os.environ, **{cache.DIR_ENV: str(cache_dir)})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_second_process_reads_what_the_first_wrote(cache_dir):
    _python("from replk_ops import cache; cache.store('demo', 'cpu', 'src', ['fwd', 56], {'index': 2})", cache_dir)
    out = _python("from replk_ops import cache; from replk_ops.cache.__main__ import main\n"
                  "print(cache.load('demo', 'cpu', 'src', ['fwd', 56])); main(['info']); main(['clear'])", cache_dir)
    assert out.splitlines()[0] == "{'index': 2}"
    assert "demo: 1 entries" in out and "removed 1 entries" in out
    assert cache.load("demo", "cpu", "src", ["fwd", 56]) is None


@pytest.mark.parametrize("part", ["device", "driver", "torch", "triton", "cuda", "source", "problem"])
def test_each_part_of_the_key_invalidates(cache_dir, monkeypatch, part):
    base = {"device": "NVIDIA H200", "driver": "580.159.04", "torch": "2.11.0", "triton": "3.6.0", "cuda": "13.0"}
    env = dict(base)
    monkeypatch.setattr(cache, "environment", lambda device: dict(env))
    cache.store("demo", "cuda:0", "src", ["fwd", 56], 1)
    assert cache.load("demo", "cuda:0", "src", ["fwd", 56]) == 1
    source, problem = "src", ["fwd", 56]
    if part == "source":
        source = "edited"
    elif part == "problem":
        problem = ["fwd", 28]
    else:
        env[part] = "other"
    assert cache.load("demo", "cuda:0", source, problem) is None
    env.update(base)
    assert cache.load("demo", "cuda:0", "src", ["fwd", 56]) == 1


def test_broken_files_are_ignored_and_rewritten(cache_dir):
    cache.store("demo", "cpu", "src", [1], "good")
    (path,) = (cache_dir / cache.LAYOUT / "demo").glob("*.json")
    for garbage in ("{not json", json.dumps({"key": "someone else's", "value": "bad"}), "[]", ""):
        path.write_text(garbage)
        assert cache.load("demo", "cpu", "src", [1]) is None
    cache.store("demo", "cpu", "src", [1], "good")
    assert cache.load("demo", "cpu", "src", [1]) == "good"


def test_concurrent_writers_leave_whole_files(cache_dir):
    """Writes are a rename of a finished temporary file: a reader sees one whole value or none."""
    values = [{"index": i, "padding": "x" * 20000} for i in range(4)]
    seen = []

    def write(value):
        for _ in range(25):
            cache.store("demo", "cpu", "src", [7], value)
            seen.append(cache.load("demo", "cpu", "src", [7]))

    threads = [threading.Thread(target=write, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen and all(v in values for v in seen)
    assert not list((cache_dir / cache.LAYOUT / "demo").glob(".*.tmp"))


def test_off_switch_and_clear_keep_other_files(cache_dir, monkeypatch):
    (cache_dir / "notes.txt").write_text("mine")
    cache.store("demo", "cpu", "src", [1], 1)
    monkeypatch.setenv(cache.SWITCH_ENV, "0")
    assert cache.load("demo", "cpu", "src", [1]) is None
    monkeypatch.setenv(cache.SWITCH_ENV, "1")
    assert cache.clear() == 1 and (cache_dir / "notes.txt").read_text() == "mine"
    assert not (cache_dir / cache.LAYOUT).exists()


@pytest.fixture
def fake_gpu(monkeypatch):
    """Make a "cuda:0" problem plannable without a GPU: every GPU implementation available, the
    environment a fixed one, timings from a table; returns the list of timed candidate lists."""
    from replk_ops.backends.cuda import loader as _extension
    from replk_ops.backends import cuda, triton

    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(_extension, "warn_once_if_missing", lambda: None)
    monkeypatch.setattr(cuda.CudaRunner, "unavailable_reason", lambda self, problem: None)
    monkeypatch.setattr(triton.TritonRunner, "unavailable_reason", lambda self, problem: None)
    monkeypatch.setattr(cache, "environment", lambda device: {"device": "stand-in GPU"})
    monkeypatch.setattr(measure, "workload", lambda problem, batch: (None,) * 4)
    timed = []

    def time_all(problem, runs):
        timed.append(sorted(runs))
        return {name: (0.5 if name == "triton" else 1.0) for name in runs}

    monkeypatch.setattr(measure, "time_all", time_all)
    replk_ops.reset()
    yield timed
    replk_ops.reset()


GPU_PROBLEM = Problem("cuda:0", torch.bfloat16, "nchw", False, 128, 56, 56, 31, 31, 15, 15, False)


def test_planner_measurements_on_cuda_outlive_the_process(cache_dir, fake_gpu):
    first = planner.plan_pass(GPU_PROBLEM, "fwd")
    assert first.implementation.name == "triton" and len(fake_gpu) == 1
    planner.reset()  # what a new process starts from: nothing in memory
    again = planner.plan_pass(GPU_PROBLEM, "fwd")
    assert again.implementation.name == "triton" and again.measurement.milliseconds == first.measurement.milliseconds
    assert len(fake_gpu) == 1, "the second plan measured again"
    cpu = GPU_PROBLEM._replace(device="cpu", dtype=torch.float32)
    assert measurements.recall(cpu.device, cpu.kind("fwd"), ["torch"]) is None  # CPU: per process


def test_no_candidate_is_timed_twice(cache_dir, fake_gpu):
    """The extension's own choice ("cuda") runs one of its algos: where all of those it may pick
    are candidates themselves, it is not timed again."""
    from replk_ops.backends import cuda

    for dtype in (torch.float32, torch.bfloat16):
        for pass_name in catalog.PASSES:
            fake_gpu.clear()
            choice = planner.plan_pass(GPU_PROBLEM._replace(dtype=dtype), pass_name)
            (names,) = fake_gpu
            assert len(names) == len(set(names))
            algos = [n for n in names if n.startswith("cuda:")]
            if algos:
                assert "cuda" not in names
                assert dict(choice.rejected)["cuda"] == cuda.REPEATS_AN_ALGO


def test_triton_tuner_times_once_then_reads_the_cache(cache_dir, monkeypatch):
    from replk_ops.backends.triton.kernels import tuner, tuning

    variants = tuning.weight_grad_shortlist(64)
    ran, timed = [], []
    monkeypatch.setattr(cache, "environment", lambda device: {"device": "stand-in GPU"})
    monkeypatch.setattr(tuner, "time_cuda", lambda run: (run(), timed.append(1), 1.0 + len(timed))[2])
    key = ("bwd_weight", 56, 56, 31, 31, "torch.bfloat16", 17)
    chosen = tuner.choose(key, variants, lambda v, warmup: ran.append((v, warmup)), "cuda:0")
    assert chosen == variants[0] and len(timed) == len(variants)
    assert {v for v, warm in ran if warm} == set(variants)  # every variant compiled first
    tuner.forget()  # a new process
    assert tuner.choose(key, variants, lambda v, warmup: ran.append(v), "cuda:0") == variants[0]
    assert len(timed) == len(variants), "the second process tuned again"


def test_triton_tuning_runs_the_real_kernels_in_the_interpreter(cache_dir, monkeypatch):
    """The tuning path end to end on Triton's interpreter (compiles in parallel where Triton offers
    it: there a warm-up is a no-op), with timings from a stand-in clock: the result is right."""
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("runs on Triton's interpreter")
    from replk_ops.backends.triton.kernels import launch, tuner, tuning

    monkeypatch.setattr(tuning, "fixed_tiles", lambda *a, **k: False)
    monkeypatch.setattr(cache, "environment", lambda device: {"device": "interpreter"})
    monkeypatch.setattr(tuner, "time_cuda", lambda run: (run(), 1.0)[1])
    tuner.forget()
    x = torch.randn(16, 2, 8, 8)
    w = torch.randn(2, 1, 3, 3)
    y = launch.fwd(x, w, None, 1, 1)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, padding=1, groups=2), rtol=1e-4, atol=1e-4)
    dw, _ = launch.bwd_weight(y, x, 3, 3, 1, 1)
    assert dw.shape == w.shape and cache.entries().get(tuner.SECTION, 0) == 2
    tuner.forget()


# The default GPU bench (replknet31b stages at batch 64 and 1, fp32 and bf16, both layouts) from
# an empty cache: 44 tuning keys, at most tuning.MAX_TUNED variants each, 160 in all (Triton's
# autotuner with the earlier configs compiled 5 to 8 per forward key and 4 or 5 per weight
# gradient one).
DEFAULT_BENCH_VARIANT_BUDGET = 160


def test_the_default_gpu_bench_compiles_a_bounded_number_of_triton_variants():
    pytest.importorskip("triton")
    from replk_ops.bench import cold_start, shapes
    from replk_ops.backends.triton.kernels import tuning

    bench_shapes = shapes.preset("replknet31b", "cuda")
    keys = cold_start.triton_tuning(bench_shapes, [torch.float32, torch.bfloat16])
    assert keys and all(1 <= len(listed) <= tuning.MAX_TUNED for listed in keys.values())
    assert cold_start.compiled_variants(bench_shapes, [torch.float32, torch.bfloat16]) <= DEFAULT_BENCH_VARIANT_BUDGET
    line = cold_start.start_line(bench_shapes, [torch.float32, torch.bfloat16], torch.device("cuda"), True)
    assert f"{len(keys)} Triton tunings" in line and "planner measurements" in line
