"""The bench: outputs have the documented structure, and a wrong backend is flagged, not timed."""
import json

import pytest
import torch

from replk_ops.bench import __main__ as bench_main
from replk_ops.bench import candidates as cands
from replk_ops.bench.hardware import Peaks
from replk_ops.bench.runner import flops, run
from replk_ops.bench.shapes import PRESETS, Shape, parse_shape, preset

PEAKS = Peaks("test", 1.0, None, None, 0.01, "test")
SHAPE = Shape(2, 4, 9, 8, 5, 5, "tiny")


def _wrong_candidate():
    good = cands.replk_candidate("reference")
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
    assert len(payload["rows"]) == 4 * 2 * 3
    row = payload["rows"][0]
    assert {"shape", "dtype", "pass_name", "candidate", "status", "median_ms", "p20_ms", "p80_ms",
            "tflops_nominal", "tflops_valid", "pct_of_bound", "speedup"} <= set(row)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_model_level_json(tmp_path):
    out_json = tmp_path / "m.json"
    assert bench_main.main(["--model", "replknet31b", "--image-size", "64", "--batch", "2", "--budget", "0.01",
                            "--json", str(out_json)]) == 0
    rows = json.loads(out_json.read_text())["models"]
    assert [r["convs"] for r in rows] == ["nn.Conv2d", "replk_ops"]
    assert all(r["train_step_ms"] > 0 and r["inference_images_per_s"] > 0 for r in rows)
    assert all(0.0 <= r["large_conv_share"] < 1.0 for r in rows)
