"""``python -m replk_ops.bench --preset uxnet3d|repuxnet|mednext``: the 3-D layer bench (bench3d)
with the bench's environment record and JSON."""
from __future__ import annotations

import json
from pathlib import Path

from . import bench3d
from .console import say
from .shapes3d import DESCRIPTIONS_3D, preset3d


def run_preset3d(args, device, env) -> int:
    shapes = preset3d(args.preset, device.type, args.batch or None)
    say(f"preset {args.preset} ({DESCRIPTIONS_3D[args.preset]}) at batch {shapes[0].n}, fp32, "
        "both layouts, against nn.Conv3d in the same layout")
    rows = bench3d.run(shapes, list(bench3d.LAYOUTS), device, args.budget)
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "arguments": vars(args),
                                               "rows3d": bench3d.as_json(rows)}, indent=2))
    return 0
