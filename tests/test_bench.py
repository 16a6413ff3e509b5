"""The bench: outputs have the documented structure, a wrong backend is flagged, not timed, and
requests it cannot serve end with a one-line error and a nonzero exit."""
import json
import os
import re
import struct
import subprocess
import sys
import time

import pytest
import torch

from replk_ops.bench import __main__ as bench_main
from replk_ops.bench import candidates as cands
from replk_ops.bench.hardware import Peaks, bounds_line, peaks_for
from replk_ops.bench.model_bench import large_convs_only
from replk_ops.bench.report import bound_cell, detail_cell, spread_cell, write_plot
from replk_ops.bench.runner import Row, flops, run
from replk_ops.bench.shapes import PRESETS, Shape, parse_shape, preset, with_batches
from replk_ops.bench.timing import MIN_SAMPLES, time_cpu, time_interleaved
from conv_testing import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--shape", "1,3,10,9,7,7", "--passes", "fwd", "--budget", "0.01", "--no-overhead"]
# A guard against a hung subprocess, not a speed limit: a busy machine may take minutes.

PEAKS = Peaks("test", 1.0, None, None, 0.01, "test")
SHAPE = Shape(2, 4, 9, 8, 5, 5, "tiny")


def _wrong_candidate():
    good = cands.replk_candidate("direct")
    passes = dict(good.passes)
    passes["fwd"] = lambda x, w, b, dy, pad: good.passes["fwd"](x, w, b, dy, pad) * 1.01
    return cands.Candidate("deliberately wrong", False, passes)


def test_wrong_backend_is_flagged_and_not_timed():
    rows = run([SHAPE], [torch.float32], ["fwd", "bwd_input", "fwd+bwd"],
               [cands.torch_candidate(False), _wrong_candidate()], torch.device("cpu"), PEAKS, budget_s=0.01)
    wrong = [r for r in rows if r.candidate == "deliberately wrong"]
    by_pass = {r.pass_name: r for r in wrong}
    assert by_pass["fwd"].status == "wrong" and by_pass["fwd"].median_ms is None
    assert by_pass["fwd+bwd"].status == "wrong" and by_pass["fwd+bwd"].median_ms is None
    assert by_pass["bwd_input"].status == "ok" and by_pass["bwd_input"].median_ms > 0


def test_every_row_of_a_right_backend_is_timed_with_ratios():
    rows = run([SHAPE], [torch.float32, torch.bfloat16], list(cands.PASSES), cands.default_candidates(torch.device("cpu")),
               torch.device("cpu"), PEAKS, budget_s=0.01)
    assert rows and all(r.status == "ok" for r in rows), [r.detail for r in rows if r.status != "ok"]
    for r in rows:
        assert r.p20_ms <= r.median_ms <= r.p80_ms
        assert "nn.Conv2d NCHW" in r.speedup and "nn.Conv2d channels_last" in r.speedup
        assert r.tflops_valid <= r.tflops_nominal


def test_valid_flops_count_only_taps_on_the_input():
    shape = Shape(1, 1, 3, 3, 3, 3)
    # 3x3 map, 3x3 kernel, "same": per dim 2 + 3 + 2 valid taps
    assert flops(shape, "fwd", valid=True) == 2 * 7 * 7
    assert flops(shape, "fwd", valid=False) == 2 * 81
    assert flops(shape, "fwd+bwd", valid=False) == 3 * 2 * 81


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_shapes(name):
    assert preset(name, "cpu") and preset(name, "cuda")


def test_parse_shape_rejects_bad_text():
    assert parse_shape("1,2,3,4,5,7") == Shape(1, 2, 3, 4, 5, 7, "custom")
    with pytest.raises(ValueError, match="--shape"):
        parse_shape("1,2,3")


def test_cli_writes_json_and_plot(tmp_path):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    code = bench_main.main(["--shape", "1,3,10,9,7,7", "--passes", "all", "--dtype", "fp32,bf16", "--budget", "0.01",
                            "--json", str(out_json), "--plot", str(out_png)])
    assert code == 0
    payload = json.loads(out_json.read_text())
    assert set(payload) == {"environment", "arguments", "rows"}
    assert {"device", "torch", "triton", "commit", "peaks"} <= set(payload["environment"])
    assert len(payload["rows"]) == len(cands.PASSES) * 2 * len(cands.default_candidates(torch.device("cpu")))
    assert set(payload["environment"]["host_overhead_us"]) == {"inference", "fwd+bwd"}
    row = payload["rows"][0]
    assert {"shape", "dtype", "pass_name", "candidate", "status", "median_ms", "p20_ms", "p80_ms",
            "tflops_nominal", "tflops_valid", "pct_of_bound", "speedup"} <= set(row)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _small_replknet(**kwargs):
    """RepLKNet-31B's structure and kernels with few channels and blocks, so the CLI test is quick."""
    from replk_ops import models

    return models.RepLKNet(large_kernel_sizes=[31, 29, 27, 13], layers=[1, 1, 1, 1], channels=[8, 8, 16, 16],
                           small_kernel=5, **kwargs)


def test_cli_model_level_json(tmp_path, monkeypatch):
    from replk_ops.bench import model_bench

    monkeypatch.setitem(model_bench.MODEL_FACTORIES, "replknet31b", _small_replknet)
    out_json = tmp_path / "m.json"
    assert bench_main.main(["--model", "replknet31b", "--image-size", "64", "--batch", "2", "--budget", "0.01",
                            "--json", str(out_json)]) == 0
    rows = json.loads(out_json.read_text())["models"]
    assert [r["convs"] for r in rows] == ["nn.Conv2d", "replk_ops"]
    assert all(r["train_step_ms"] > 0 and r["inference_images_per_s"] > 0 for r in rows)
    # measured on their own, never a clamped difference of two step times
    for r in rows:
        assert r["large_conv_ms"] > 0 and r["large_conv_share"] == r["large_conv_ms"] / r["train_step_ms"]


def test_large_convs_are_replayed_alone_with_their_recorded_shapes():
    from replk_ops import LargeKernelDWConv2d

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), LargeKernelDWConv2d(4, 7), torch.nn.ReLU(),
                                LargeKernelDWConv2d(4, 9))
    images = torch.randn(2, 3, 12, 12)
    calls = []
    for m in (model[1], model[3]):
        m.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))

    def step():
        model(images).sum().backward()

    replay = large_convs_only(model, step, lambda: torch.autocast("cpu", enabled=False))
    model.zero_grad(set_to_none=True)
    calls.clear()
    replay()
    assert calls == [(2, 4, 12, 12), (2, 4, 12, 12)]
    assert model[0].weight.grad is None  # the rest of the network does not run
    with pytest.raises(ValueError, match="model: expected LargeKernelDWConv2d layers"):
        large_convs_only(torch.nn.Conv2d(3, 3, 1), lambda: None, lambda: torch.autocast("cpu", enabled=False))


def test_bench_imports_and_runs_without_torch_extension_tooling():
    """torch.utils.cpp_extension warns "No CUDA runtime is found" on a CPU machine when imported."""
    code = ("import sys; from replk_ops.bench.__main__ import main; "
            f"code = main({TINY!r} + ['--backends', 'direct']); "
            "sys.exit(code or ('torch.utils.cpp_extension' in sys.modules and 'imported cpp_extension'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S,
                          env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "No CUDA runtime" not in done.stderr and "cpp_extension" not in done.stderr, done.stderr


def test_bench_runs_without_rich():
    code = ("import sys; sys.modules['rich'] = None; from replk_ops.bench.__main__ import main; "
            f"sys.exit(main({TINY!r} + ['--backends', 'direct']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S,
                          env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    header = next(line for line in done.stdout.splitlines() if line.startswith("shape"))
    assert "median ms" in header and "% bound" in header
    assert "replk_ops direct" in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "error: --batch: expected sizes >= 1, got 0"),
    (["--budget", "0"], "error: --budget: expected seconds > 0, got 0.0"),
    (["--threads", "0"], "error: --threads: expected at least 1, got 0"),
    (["--preset", "slak"], "error: --shape replaces the preset: give --shape or --preset slak, not both"),
    (["--dtype", "fp64"], "error: --dtype: expected some of fp32, fp16, bf16, got 'fp64'"),
    (["--passes", "fwd,back"], "error: --passes: expected some of fwd, bwd_input, bwd_weight, fwd+bwd, got 'fwd,back'"),
])
def test_impossible_requests_exit_nonzero_with_one_line(capsys, argv, message):
    assert bench_main.main(TINY + argv) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(capsys):
    assert bench_main.main(TINY + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: no CUDA GPU is available") and err.count("\n") == 1


def test_a_backend_that_runs_no_row_fails_with_its_reason(capsys):
    assert bench_main.main(TINY + ["--device", "cpu", "--backends", "direct,cuda"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --backends: replk_ops cuda could not run any row (")
    assert "CUDA tensors only" in captured.err and captured.err.count("\n") == 1
    assert "runs on CUDA tensors only, got a tensor on cpu" in captured.out  # the table's reason, not cut


def test_batch_sets_the_batch_size(tmp_path):
    out_json = tmp_path / "r.json"
    assert bench_main.main(TINY + ["--batch", "2", "--backends", "direct", "--json", str(out_json)]) == 0
    payload = json.loads(out_json.read_text())
    assert {r["shape"] for r in payload["rows"]} == {"2x3x10x9 k7x7"}
    assert payload["arguments"]["preset"] is None  # --shape replaced the preset
    shapes = with_batches(preset("replknet31b", "cpu"), [2, 8])
    assert [s.n for s in shapes] == [2] * 4 + [8] * 4


def test_a_preset_run_says_its_batch_sizes():
    assert bench_main.preset_line("replknet31b", [], "cpu").startswith(
        "preset replknet31b (RepLKNet-31B stage shapes (default)) at batch 1 on CPU (on CUDA: 64, 1;")
    assert bench_main.preset_line("slak", [8], "cpu").endswith("at batch 8")


def test_help_states_the_defaults():
    text = subprocess.run([sys.executable, "-m", "replk_ops.bench", "--help"], capture_output=True, text=True,
                          timeout=HANG_GUARD_S, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT).stdout
    flat = " ".join(text.split())
    assert "seconds of timing per row (default 0.1)" in flat
    assert "run at this batch size instead of the preset's" in flat


def _spin(seconds):
    """A call that costs ``seconds`` of this thread's CPU time, however busy the machine."""
    def spin():
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass
    return spin


def test_a_row_with_too_few_samples_says_so_instead_of_a_spread():
    timing = time_cpu(_spin(0.01), min_run_time=0.001, wall_cap_s=0.0)  # the cap stops it after one round
    assert timing.samples == 1 and timing.p20_ms == timing.median_ms == timing.p80_ms
    row = Row("s", "l", "fp32", "fwd", "c", "ok", median_ms=30.0, p20_ms=30.0, p80_ms=30.0, samples=1)
    assert spread_cell(row) == "too few samples (1)"
    row.samples, row.p80_ms = MIN_SAMPLES, 31.0
    assert spread_cell(row) == "30.000-31.000"
    # a call longer than the budget still gets the rounds a spread needs
    no_cap = float("inf")  # so however busy the machine, the rounds end on the budget alone
    assert time_cpu(_spin(0.005), min_run_time=0.001, wall_cap_s=no_cap).samples == MIN_SAMPLES
    assert time_cpu(lambda: None, min_run_time=0.01, wall_cap_s=no_cap).samples > MIN_SAMPLES


def test_cpu_variants_are_interleaved_round_by_round_with_the_first_rotating():
    calls = []
    fns = {name: (lambda name=name: (calls.append(name), _spin(2e-3)())) for name in "abc"}
    timings = time_interleaved(fns, budget_s=0.001, wall_cap_s=float("inf"), min_samples=3)
    assert {t.samples for t in timings.values()} == {3}
    # a first call as long as a sample is timed again: warm-up, then 3 rounds
    assert calls == list("aabbcc") + list("abc") + list("bca") + list("cab")


def test_a_slow_first_call_does_not_decide_how_many_calls_make_a_sample():
    """A layer's first call may plan and time candidates for a call of microseconds: sampled one
    call at a time, beside a variant sampled many calls at a time, it would look slower than it is."""
    calls = []

    def first_call_slow():
        calls.append(1)
        _spin(5e-3 if len(calls) == 1 else 1e-5)()

    timings = time_interleaved({"v": first_call_slow}, budget_s=0.0, wall_cap_s=float("inf"), min_samples=2)
    assert timings["v"].samples == 2
    # two warm-up calls, then samples of a millisecond of 10 us calls (at least 10 each however busy
    # the machine: sized by the first call, each sample would be one call)
    assert len(calls) >= 2 + 2 * 10


def test_thread_cpu_time_does_not_count_time_spent_off_the_cpu():
    """What a busy machine does to a call (descheduling it) a sleep does for sure."""
    timings = time_interleaved({"sleeps": lambda: time.sleep(0.02), "spins": _spin(0.002)}, budget_s=0.001)
    assert timings["sleeps"].median_ms < 1.0 < timings["spins"].median_ms


def test_no_percent_of_a_probe_on_cpu():
    peaks = peaks_for(torch.device("cpu"))
    assert not peaks.is_bound
    rows = run([SHAPE], [torch.float32], ["fwd"], [cands.replk_candidate("direct")], torch.device("cpu"), peaks,
               budget_s=0.01)
    assert rows[0].pct_of_bound is None and bound_cell(rows[0]) == "n/a"
    assert "n/a" in bounds_line(peaks) and "None" not in bounds_line(peaks)
    datasheet = Peaks("GPU", 10.0, None, None, 1.0, "datasheet")
    assert "no tensor cores" in bounds_line(datasheet) and " - " not in bounds_line(datasheet)
    rows = run([SHAPE], [torch.float32], ["fwd"], [cands.replk_candidate("direct")], torch.device("cpu"),
               datasheet, budget_s=0.01)
    assert 0 < rows[0].pct_of_bound < 100


def test_error_details_keep_the_reason():
    row = Row("s", "l", "fp32", "fwd", "c", "error",
              detail="error: RuntimeError: backend: 'cuda' cannot run this call: runs on CUDA tensors only")
    assert detail_cell(row) == "runs on CUDA tensors only"


def _png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    return struct.unpack(">II", head[16:24])


def test_plots_of_large_presets_stay_readable(tmp_path):
    rows = []
    for shape in preset("slak", "cuda"):
        for dtype in ("fp32", "bf16"):
            for pass_name in cands.PASSES:
                rows.append(Row(str(shape), shape.label, dtype, pass_name, "replk_ops cuda", "ok", median_ms=1.0,
                                speedup={"nn.Conv2d NCHW": 2.0}, pct_of_bound=50.0))
    written = write_plot(str(tmp_path / "slak.png"), rows, "nn.Conv2d NCHW")
    assert len(written) > 1 and all(os.path.exists(p) for p in written)
    for path in written:
        width, height = _png_size(path)
        assert width <= 1600 and height <= 2200, (path, width, height)
    assert write_plot(str(tmp_path / "one.png"), rows[:8], "nn.Conv2d NCHW") == [str(tmp_path / "one.png")]


def test_rows_below_nn_conv2d_in_their_own_layout_are_marked():
    from replk_ops.bench.report import same_layout_cell
    from replk_ops.bench.runner import Row

    baselines = ["nn.Conv2d NCHW", "nn.Conv2d channels_last"]

    def row(candidate, median, spread, speedup, samples=9):
        return Row("s", "", "fp32", "fwd", candidate, "ok", median_ms=median, p20_ms=median - spread,
                   p80_ms=median + spread, samples=samples, speedup=speedup)

    nchw, cl = row(baselines[0], 1.0, 0.01, {}), row(baselines[1], 2.0, 0.01, {})
    slower = row("replk_ops auto (channels_last)", 2.5, 0.01, {baselines[0]: 0.4, baselines[1]: 0.8})
    noisy = row("replk_ops auto", 1.02, 0.05, {baselines[0]: 0.98, baselines[1]: 1.96})
    faster = row("replk_ops auto", 0.5, 0.01, {baselines[0]: 2.0, baselines[1]: 4.0})
    unsure = row("replk_ops auto (channels_last)", 2.5, 0.01, {baselines[0]: 0.4, baselines[1]: 0.8}, samples=2)
    rows = [nchw, cl, slower, noisy, faster]
    assert "0.80 SLOWER" in same_layout_cell(slower, rows, baselines)    # against channels_last, not NCHW
    assert "within noise" not in same_layout_cell(slower, rows, baselines)
    assert "0.98 (within noise)" in same_layout_cell(noisy, rows, baselines)
    assert "SLOWER" not in same_layout_cell(noisy, rows, baselines)     # overlapping spreads: no verdict
    assert same_layout_cell(unsure, rows, baselines) == "0.80 (too few samples)"
    assert same_layout_cell(faster, rows, baselines) == "2.00"
    assert same_layout_cell(nchw, rows, baselines) == ""


def test_host_overhead_is_a_difference_of_interleaved_thread_times():
    from replk_ops.bench.overhead import interleaved_difference_us, interleaved_differences_us

    assert 30 < interleaved_difference_us(_spin(10e-6), _spin(60e-6), rounds=5, calls=50) < 70
    # the wall-clock cap ends the rounds early, however many were asked for
    assert len(interleaved_differences_us(_spin(10e-6), _spin(60e-6), rounds=50, calls=5, wall_cap_s=0.0)) == 1


def test_host_overhead_line_says_when_it_is_noise():
    from replk_ops.bench.overhead import overhead_line
    from replk_ops.bench.timing import Timing

    clear, noisy, short = Timing(5.0, 4.0, 6.0, 9), Timing(8.0, -7.5, 25.0, 9), Timing(5.0, 4.0, 6.0, 2)
    line = overhead_line({"inference": clear, "fwd+bwd": noisy})
    assert "inference +5.0 us (p20-p80 +4.0 to +6.0), fwd+bwd +8.0 us (p20-p80 -7.5 to +25.0) within noise" in line
    assert "9 interleaved rounds" in line
    assert "too few rounds" in overhead_line({"inference": clear, "fwd+bwd": short})


def test_markdown_table_and_skipped_overhead(tmp_path):
    out_md, out_json = tmp_path / "r.md", tmp_path / "r.json"
    threads = torch.get_num_threads()
    assert bench_main.main(TINY + ["--passes", "fwd,fwd+bwd", "--markdown", str(out_md), "--json", str(out_json)]) == 0
    lines = out_md.read_text().splitlines()
    assert "thread CPU time" in lines[0]
    assert lines[2] == "| shape | dtype | layout | pass | nn.Conv2d ms | replk_ops ms | speedup |"
    body = lines[4:]
    assert len(body) == 4 and all(line.startswith("| 1x3x10x9 k7x7 | fp32 |") for line in body)  # 2 layouts x 2 passes
    assert {line.split(" | ")[2] for line in body} == {"NCHW", "channels_last"}
    assert all(re.search(r"\| \d+\.\d\dx( \((within noise|too few samples)\)| SLOWER)? \|$", line) for line in body)
    payload = json.loads(out_json.read_text())
    assert "host_overhead_us" not in payload["environment"]  # --no-overhead
    assert payload["environment"]["clock"] == "thread CPU time" and payload["arguments"]["threads"] == 1
    assert torch.get_num_threads() == threads  # the bench's one thread does not outlive it
