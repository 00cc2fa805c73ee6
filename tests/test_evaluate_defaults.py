"""``restore test`` defaults that BasicSR fixes: the checkpoint entry loaded when none is named, and the names given
to earlier results folders of the same run name."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.evaluate import archive_results, build_model
from restore.utils.options import load_options

NETWORK_G = {"type": "DLGSANet", "dim": 8, "groups": 1, "blocks": 1, "buildblock_type": "sparseedge",
             "window_size": 5, "idynamic_num_heads": 2, "restormer_num_heads": 2, "tlc_kernel": 8, "upscale": 2,
             "upsampler": "pixelshuffledirect"}  # fmt: skip


def test_without_param_key_g_the_params_entry_is_loaded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_network(NETWORK_G)
    params = {k: v.clone() for k, v in net.state_dict().items()}
    ema = {k: v + 0.25 if v.is_floating_point() else v for k, v in params.items()}
    checkpoint = save_checkpoint(tmp_path / "net.pth", params, params_ema=ema)
    opt = {"name": "run", "network_g": dict(NETWORK_G), "path": {"pretrain_network_g": str(checkpoint)}}
    option_file = tmp_path / "run.yml"
    option_file.write_text(yaml.safe_dump({**opt, "model_type": "SRModel", "scale": 2}), encoding="utf-8")
    for options in (opt, load_options(option_file)):  # the Python API and an option file naming no key
        lines: list[str] = []
        loaded = build_model(options, lines.append).state_dict()
        assert all(torch.equal(loaded[k], params[k]) for k in params), lines
        assert any("with param key: [params]" in line for line in lines), lines


def test_each_archive_of_the_same_second_gets_its_own_name(tmp_path: Path) -> None:
    root = tmp_path / "results" / "run"
    archived = []
    for i in range(4):
        root.mkdir(parents=True)
        (root / "metrics.json").write_text(str(i))
        archived.append(archive_results(root, "20260101_120000"))
    names = [p.name for p in archived]
    assert names == [
        "run_archived_20260101_120000",
        "run_archived_20260101_120000_1",
        "run_archived_20260101_120000_2",
        "run_archived_20260101_120000_3",
    ]
    assert [(p / "metrics.json").read_text() for p in archived] == ["0", "1", "2", "3"]
    assert not root.exists() and archive_results(root, "20260101_120000") is None
