"""BasicSR-format option files: typed validation, overrides, path resolution, network kwargs checks."""

import json
from pathlib import Path

import pytest
import yaml

from restore.utils.options import REPO_ROOT, OptionsError, load_options, validate_options

TRAIN_YML = """
name: demo_train
model_type: HATModel
scale: 4
num_gpu: auto
manual_seed: 0
datasets:
  train:
    name: DF2K
    type: PairedImageDataset
    dataroot_gt: datasets/DF2K/DF2K_HR_sub
    dataroot_lq: datasets/DF2K/DF2K_bicx4_sub
    io_backend:
      type: disk
    gt_size: 256
    use_hflip: true
    use_rot: true
    use_shuffle: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: 4
    dataset_enlarge_ratio: 1
    prefetch_mode: ~
  val_1:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: ./datasets/Set5/GTmod4
    dataroot_lq: ./datasets/Set5/LRbicx4
    io_backend:
      type: disk
network_g:
  type: HAT
  upscale: 4
  in_chans: 3
  img_size: 64
  window_size: 16
  compress_ratio: 3
  squeeze_factor: 30
  conv_scale: 0.01
  overlap_ratio: 0.5
  img_range: 1.
  depths: [6, 6]
  embed_dim: 60
  num_heads: [6, 6]
  mlp_ratio: 2
  upsampler: 'pixelshuffle'
  resi_connection: '1conv'
path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~
train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 2e-4
    weight_decay: 0
    betas: [0.9, 0.99]
  scheduler:
    type: MultiStepLR
    milestones: [250000, 400000]
    gamma: 0.5
  total_iter: 500000
  warmup_iter: -1
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean
val:
  val_freq: !!float 5e3
  save_img: false
  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 4
      test_y_channel: true
logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~
dist_params:
  backend: nccl
  port: 29500
"""


@pytest.fixture
def train_yml(tmp_path: Path) -> Path:
    path = tmp_path / "train.yml"
    path.write_text(TRAIN_YML)
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opt.yml"
    path.write_text(text)
    return path


def test_full_basicsr_train_file_loads(train_yml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = load_options(train_yml, is_train=True)
    assert opt["val"]["val_freq"] == 5000 and isinstance(opt["val"]["val_freq"], int)
    assert opt["logger"]["save_checkpoint_freq"] == 5000
    assert opt["network_g"]["img_range"] == 1.0
    assert opt["train"]["optim_g"]["lr"] == pytest.approx(2e-4)
    assert opt["datasets"]["train"]["phase"] == "train" and opt["datasets"]["val_1"]["phase"] == "val"
    assert opt["datasets"]["train"]["scale"] == 4
    assert opt["path"]["param_key_g"] == "params"  # default filled (BasicSR's)
    assert opt["path"]["models"] == str(tmp_path.resolve() / "experiments" / "demo_train" / "models")


def test_relative_paths_resolve_against_the_current_directory(train_yml, tmp_path, monkeypatch):
    work = tmp_path / "my_project"
    work.mkdir()
    monkeypatch.chdir(work)
    opt = load_options(train_yml)
    here = work.resolve()
    assert opt["datasets"]["train"]["dataroot_gt"] == str(here / "datasets/DF2K/DF2K_HR_sub")
    assert opt["datasets"]["val_1"]["dataroot_lq"] == str(here / "datasets/Set5/LRbicx4")
    assert opt["path"]["results_root"] == str(here / "results" / "demo_train")
    assert REPO_ROOT not in Path(opt["path"]["results_root"]).parents


def test_official_option_files_resolve_inside_the_checkout_from_the_repository_root(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    opt = load_options(REPO_ROOT / "options/test/HAT_SRx4.yml")
    assert opt["path"]["results_root"] == str(REPO_ROOT / "results" / opt["name"])
    for dataset in opt["datasets"].values():
        assert Path(dataset["dataroot_gt"]).is_relative_to(REPO_ROOT)


def test_null_dataset_is_skipped_and_listed(train_yml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = load_options(train_yml, force_yml=["datasets:val_1=~"])
    assert "val_1" not in opt["datasets"] and "train" in opt["datasets"]
    assert opt["skipped_datasets"] == ["val_1"]
    text = Path(train_yml).read_text().replace("  val_1:\n", "  val_2: ~\n  val_1:\n", 1)
    (tmp_path / "null.yml").write_text(text)
    opt = load_options(tmp_path / "null.yml")
    assert opt["skipped_datasets"] == ["val_2"] and set(opt["datasets"]) == {"train", "val_1"}
    assert "skipped_datasets" not in load_options(train_yml)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("network_g:embed_dim=abc", "network_g.embed_dim: expected int, got str 'abc'"),
        ("network_g:embed_dim=180.5", "network_g.embed_dim: expected int, got float 180.5"),
        ("network_g:depths=[6, '6']", "network_g.depths: expected a list of int, got list [6, '6']"),
    ],
)
def test_network_g_value_types_are_checked_against_the_constructor(train_yml, override, expected):
    with pytest.raises(OptionsError) as err:
        load_options(train_yml, force_yml=[override])
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert message.startswith(str(train_yml)) and f"(set by --force_yml {override})" in message


def test_network_g_string_where_an_int_belongs_in_the_file(tmp_path):
    path = tmp_path / "o.yml"
    path.write_text("name: x\nnetwork_g:\n  type: DLGSANet\n  dim: forty-eight\n  groups: '2'\n")
    with pytest.raises(OptionsError) as caught:
        load_options(path)
    assert caught.value.problems == [  # both wrong values, not only the first
        f"{path}: network_g.dim: expected int, got str 'forty-eight'",
        f"{path}: network_g.groups: expected int, got str '2'",
    ]


def test_absolute_paths_are_kept(train_yml, tmp_path):
    opt = load_options(train_yml, force_yml=[f"path:pretrain_network_g={tmp_path}/w.pth"])
    assert opt["path"]["pretrain_network_g"] == f"{tmp_path}/w.pth"


def test_force_yml_overrides_nested_values(train_yml):
    opt = load_options(train_yml, force_yml=["train:total_iter=1000", "val:save_img=true", "name=other"])
    assert opt["train"]["total_iter"] == 1000
    assert opt["val"]["save_img"] is True
    assert opt["name"] == "other"


def test_unknown_key_names_path_and_suggests(train_yml):
    with pytest.raises(OptionsError, match=r"train\.yml: train\.total_iters: unknown key; did you mean 'total_iter'"):
        load_options(train_yml, force_yml=["train:total_iters=5"])
    with pytest.raises(OptionsError, match=r"datasets\.train\.gt_sise: unknown key; did you mean 'gt_size'"):
        load_options(train_yml, force_yml=["datasets:train:gt_sise=5"])


def test_wrong_type_names_expected_type(train_yml):
    with pytest.raises(OptionsError, match=r"train\.total_iter: expected int, got str 'many'"):
        load_options(train_yml, force_yml=["train:total_iter=many"])
    with pytest.raises(OptionsError, match=r"val\.save_img: expected bool, got int 3"):
        load_options(train_yml, force_yml=["val:save_img=3"])
    with pytest.raises(OptionsError, match=r"scale: expected int, got float 2\.5"):
        load_options(train_yml, force_yml=["scale=2.5"])
    with pytest.raises(OptionsError, match=r"datasets\.train: expected a mapping"):
        load_options(train_yml, force_yml=["datasets:train=3"])


def test_choices_are_enforced(train_yml):
    with pytest.raises(OptionsError, match=r"precision: expected one of 'fp32', 'bf16', 'fp16', got 'fp8'"):
        load_options(train_yml, force_yml=["precision=fp8"])


def test_float_written_without_dot_is_accepted(tmp_path):
    opt = validate_options({"name": "x", "train": {"optim_g": {"type": "Adam", "lr": "1e-4"}, "ema_decay": "0.9"}},
                           check_network=False)
    assert opt["train"]["ema_decay"] == pytest.approx(0.9)


def test_optimizer_kwargs_are_checked_against_torch(train_yml):
    with pytest.raises(OptionsError, match=r"train\.optim_g\.lrr: unknown key; did you mean 'lr'"):
        load_options(train_yml, force_yml=["train:optim_g:lrr=0.1"])


def test_misspelt_network_kwarg_is_an_error(train_yml):
    expected = r"network_g\.window_sizee: HAT takes no argument 'window_sizee'; did you mean 'window_size'"
    with pytest.raises(OptionsError, match=expected):
        load_options(train_yml, force_yml=["network_g:window_sizee=8"])


def test_unknown_network_type_lists_registered(train_yml):
    with pytest.raises(OptionsError, match=r"network_g\.type: unknown arch type 'HATT'.*Registered: .*HAT"):
        load_options(train_yml, force_yml=["network_g:type=HATT"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(OptionsError, match="option file not found"):
        load_options(tmp_path / "missing.yml")
    with pytest.raises(OptionsError, match=r"opt\.yml: invalid YAML at line 2"):
        load_options(write(tmp_path, "name: a\n  bad: [1\n"))
    with pytest.raises(OptionsError, match="expected a mapping at the top level"):
        load_options(write(tmp_path, "- 1\n- 2\n"))


def test_bad_force_yml_item(train_yml):
    with pytest.raises(OptionsError, match="expected KEY:SUBKEY=VALUE"):
        load_options(train_yml, force_yml=["train:total_iter"])


def _official_like(entry: dict, kwargs: dict, arch: str) -> dict:
    """The structure of an official option file rebuilt from the index and manifest records."""
    opt = {
        "name": "official",
        "model_type": entry.get("model_type", "SRModel"),
        "scale": entry.get("scale", 1),
        "num_gpu": 1,
        "network_g": {"type": arch, **kwargs},
        "path": {"pretrain_network_g": "experiments/pretrained_models/x.pth",
                 "param_key_g": entry.get("param_key_g", "params_ema"),
                 "strict_load_g": entry.get("strict_load_g", True)},
    }
    if entry.get("tile"):
        opt["tile"] = entry["tile"]
    return opt


def _manifest_cases(fixtures: Path):
    manifests = fixtures / "parity" / "manifests"
    index = json.loads((manifests / "index_HAT_DRCT.json").read_text())
    cases = []
    for source, entry in index.items():
        manifest = json.loads((manifests / entry["manifest"]).read_text())
        cases.append((source, entry, manifest))
    for path in sorted(manifests.glob("*.json")):
        manifest = json.loads(path.read_text())
        if manifest.get("arch") in ("DRSformer", "DLGSANet"):
            cases.append((manifest["source"], {}, manifest))
    return cases


def test_every_official_network_g_validates(fixtures):
    cases = _manifest_cases(fixtures)
    assert len(cases) >= 63 + 11
    for source, entry, manifest in cases:
        arch = entry.get("network_type", manifest["arch"])
        opt = validate_options(_official_like(entry, manifest["kwargs"], arch), source)
        assert opt["network_g"] == {"type": arch, **manifest["kwargs"]}, source


def test_repository_option_files_load():
    files = sorted((REPO_ROOT / "options").rglob("*.yml"))
    assert files, "options/ holds the option files of every official configuration"
    for path in files:
        opt = load_options(path, is_train="train" in path.parts)
        assert opt["network_g"]["type"], path
        yaml.safe_load(path.read_text())
