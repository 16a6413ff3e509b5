"""The repuxnet preset's 1x32x32^3 rows again, at the final commit (the preset's full run started
before the last memory changes); same runner as the bench."""
import torch

from replk_ops.bench import bench3d
from replk_ops.bench.shapes3d import Shape3d

torch.set_num_threads(1)
bench3d.run([Shape3d(1, 32, 32, 21, "repuxnet")], list(bench3d.LAYOUTS), torch.device("cpu"), 0.3)
