"""Safe loading, unwrapping, clear errors and atomic saving of checkpoints."""

import json
import os
import pickle
import struct

import pytest
import torch
from torch import nn

from restore.checkpoint import (
    CheckpointError,
    canonicalize,
    load_network,
    load_state_dict,
    read_safetensors,
    save_checkpoint,
    write_safetensors,
)


def small_net(width: int = 4) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.Conv2d(width, 3, 1))


def assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt"])
def test_pickle_formats_roundtrip_params_and_ema(tmp_path, suffix):
    net, ema = small_net(4), small_net(4)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(1.0)
    path = save_checkpoint(tmp_path / f"net{suffix}", net, ema)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"params", "params_ema"}
    assert_same(load_state_dict(path), ema.state_dict())
    assert_same(load_state_dict(path, param_key="params"), net.state_dict())


def test_params_ema_falls_back_to_params(tmp_path):
    net = small_net()
    path = save_checkpoint(tmp_path / "only_params.pth", net)
    assert_same(load_state_dict(path, param_key="params_ema"), net.state_dict())


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "net"])
def test_common_wrappers_and_module_prefix_are_unwrapped(tmp_path, wrapper):
    sd = small_net().state_dict()
    torch.save({wrapper: {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, tmp_path / "w.pth")
    assert_same(load_state_dict(tmp_path / "w.pth"), sd)


def test_bare_state_dict_and_compile_prefix():
    sd = small_net().state_dict()
    assert_same(canonicalize({f"_orig_mod.{k}": v for k, v in sd.items()}), sd)


def test_safetensors_roundtrip_all_dtypes(tmp_path):
    tensors = {
        "f32": torch.randn(2, 3),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "f16": torch.randn(1, 2, 2).half(),
        "i64": torch.arange(7),
        "u8": torch.arange(4, dtype=torch.uint8),
        "flag": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
    }
    write_safetensors(tmp_path / "t.safetensors", tensors, metadata={"format": "pt"})
    back = read_safetensors(tmp_path / "t.safetensors")
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


def test_safetensors_reader_follows_the_format_byte_for_byte(tmp_path):
    """Build a file by hand from the format description (u64 header size, JSON, raw little-endian data)."""
    values = torch.tensor([[1.5, -2.0], [0.25, 8.0]])
    header = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    (tmp_path / "hand.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + values.numpy().tobytes())
    assert torch.equal(load_state_dict(tmp_path / "hand.safetensors")["w"], values)


def test_save_safetensors_stores_ema(tmp_path):
    net, ema = small_net(), small_net(4)
    with torch.no_grad():
        ema[0].bias.fill_(7)
    save_checkpoint(tmp_path / "n.safetensors", net, ema)
    assert torch.equal(load_state_dict(tmp_path / "n.safetensors")["0.bias"], ema[0].bias)


def test_truncated_zip_checkpoint_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "good.pth", small_net())
    data = path.read_bytes()
    bad = tmp_path / "cut.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: truncated or corrupt"):
        load_state_dict(bad)


def test_truncated_legacy_pickle_names_the_file(tmp_path):
    torch.save({"params": small_net().state_dict()}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "old.pth").read_bytes()
    (tmp_path / "old_cut.pth").write_bytes(data[:200])
    with pytest.raises(CheckpointError, match=r"old_cut\.pth: truncated or corrupt"):
        load_state_dict(tmp_path / "old_cut.pth")


def test_truncated_safetensors_names_the_file(tmp_path):
    write_safetensors(tmp_path / "s.safetensors", small_net().state_dict())
    data = (tmp_path / "s.safetensors").read_bytes()
    (tmp_path / "s_cut.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"s_cut\.safetensors: truncated"):
        load_state_dict(tmp_path / "s_cut.safetensors")


def _crafted(header: object, data: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_crafted([1, 2, 3]), "invalid type: sequence"),  # a header that is a JSON list, not an object
        (_crafted({"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}}, bytes(16)), "invalid shape"),
        (_crafted({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, bytes(16)), "-8"),
        (_crafted({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(16)), "invalid"),
        (_crafted({"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)), "Q7"),
        (_crafted({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "truncated"),
        (_crafted({"__metadata__": {"k": 1}}), "expected a string"),
        (struct.pack("<Q", 5) + b"{abc}", "invalid JSON"),
        (struct.pack("<Q", 10**12) + b"{}", "header too large"),
        (b"\x01\x02", "truncated"),
    ],
    ids=[
        "list-header",
        "shape-vs-bytes",
        "negative-offset",
        "reversed-offsets",
        "unknown-dtype",
        "short-data",
        "metadata-not-string",
        "bad-json",
        "huge-header",
        "eight-bytes-missing",
    ],
)
def test_crafted_safetensors_give_one_line_errors(tmp_path, content, reason):
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_state_dict(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert reason in message


def test_bundled_demo_weights_load_through_safetensors():
    from restore.archs import build_network, detect
    from restore.assets import DEFAULT_WEIGHTS

    state = load_state_dict(DEFAULT_WEIGHTS)
    net = build_network(detect(state), state_dict=state)
    assert load_network(net, state, strict=True).ok


def test_written_safetensors_are_read_by_the_reference_parser(tmp_path):
    from safetensors.torch import load_file

    tensors = {"a": torch.randn(3, 2), "b": torch.arange(5)}
    write_safetensors(tmp_path / "w.safetensors", tensors, metadata={"epoch": 3})
    back = load_file(tmp_path / "w.safetensors")
    assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], v) for k, v in tensors.items())


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"\x89PNG\r\n\x1a\n....", "not a checkpoint"), (b"hello world", "not a checkpoint")],
)
def test_files_that_are_not_checkpoints(tmp_path, content, reason):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"weights\.pth: {reason}"):
        load_state_dict(path)


def test_pickle_without_tensors_is_not_a_checkpoint(tmp_path):
    torch.save({"epoch": 3, "note": "hi"}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_state_dict(tmp_path / "meta.pth")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "nope.pth")


class _RunsCode:
    """Unpickling this would call ``os.system``: the loader must refuse it without running anything."""

    def __reduce__(self):
        return (os.system, ("touch pwned_marker",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"params": _RunsCode()}, handle, protocol=2)
    torch.save({"params": {"w": torch.ones(1)}, "payload": _RunsCode()}, tmp_path / "evil_zip.pth")
    for name in ("evil.pth", "evil_zip.pth"):
        with pytest.raises(CheckpointError, match=rf"{name}: refused: .*could run code"):
            load_state_dict(tmp_path / name)
    assert not (tmp_path / "pwned_marker").exists()


def test_strict_load_lists_first_mismatched_shapes(tmp_path):
    path = save_checkpoint(tmp_path / "w4.pth", small_net(4))
    with pytest.raises(CheckpointError) as err:
        load_network(small_net(6), path)
    message = str(err.value)
    assert "w4.pth" in message and "\n" not in message
    assert "0.weight: expected [6, 3, 3, 3], got [4, 3, 3, 3]" in message


def test_strict_load_reports_missing_and_unexpected(tmp_path):
    sd = small_net().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["1.bias"]
    expected = r"1 missing key\(s\) \(1\.bias\); 1 unexpected key\(s\) \(extra\.weight\)"
    with pytest.raises(CheckpointError, match=expected):
        load_network(small_net(), sd)


def test_non_strict_load_keeps_matching_keys_and_reports_the_rest():
    source, target = small_net(4), small_net(6)
    before = target[0].weight.clone()
    report = load_network(target, source.state_dict(), strict=False, param_key=None)
    assert report.loaded == ["1.bias"]
    assert {k for k, _, _ in report.mismatched} == {"0.weight", "0.bias", "1.weight"}
    assert torch.equal(target[1].bias, source[1].bias)
    assert torch.equal(target[0].weight, before)
    assert "mismatched  0.weight" in report.table()


def test_atomic_save_leaves_old_file_intact_on_failure(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "net.pth", small_net(4))
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_net(6))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pth"]
