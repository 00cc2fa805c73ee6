"""The pre-flight pass of ``restore train``: every reason a run cannot start, found before anything is created.

:func:`train_problems` goes through a loaded option dict without building networks or decoding images and lists
every problem it finds, one line each: the model type and what it needs (``network_d``, ``gan_opt``, ``optim_d``
for the GAN stage), the ``train`` settings, optimizer and schedule, the Real-ESRGAN degradation keys, the files
(``path.pretrain_network_g``/``_d``, ``path.resume_state``, the VGG weights of a ``PerceptualLoss``) and the
datasets: folders, pairing, whether they can feed the configured batch, and
whether every training image is at least ``gt_size`` pixels (read from the file headers). The resume state (named,
or the newest one with ``--auto_resume``) is read by :func:`restore.commands.train.main` in the same pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from restore.checkpoint import checkpoint_option_problem
from restore.utils.errors import error_line

__all__ = ["train_problems"]

#: Exceptions whose message is a self-explanatory line (what the checks below may raise).
_EXPECTED = (OSError, ValueError, KeyError, TypeError, NotImplementedError, ImportError)


def _model_problems(opt: Mapping[str, Any]) -> list[str]:
    import restore.models  # noqa: F401  (registers the model types)
    from restore.models.lr_schedule import build_schedule
    from restore.models.real_esrgan import uses_degradation
    from restore.models.restoration import TrainSettings, _check_supported
    from restore.utils.registry import MODEL_REGISTRY

    problems = []
    model_type = opt.get("model_type") or "SRModel"
    cls = None
    try:
        cls = _model_class(model_type, MODEL_REGISTRY.get(model_type), opt)
    except (KeyError, NotImplementedError) as err:
        problems.append(f"model_type: {error_line(err)}" if isinstance(err, KeyError) else str(err))
    train = opt.get("train") or {}
    total = None
    try:
        total = TrainSettings.from_options(train).total_iter
    except ValueError as err:
        problems.append(str(err))
    if cls is not None and getattr(cls, "trains_discriminator", False):
        if not opt.get("network_d"):
            problems.append(f"network_d: missing; model_type {model_type} trains a discriminator")
        problems += [f"train.{k}: missing; model_type {model_type} needs it" for k in ("gan_opt", "optim_d")
                     if not train.get(k)]  # fmt: skip
    elif cls is not None:
        try:
            _check_supported(opt)
        except NotImplementedError as err:
            problems.append(str(err))
    if not any(train.get(k) for k in ("pixel_opt", "perceptual_opt", "fft_opt")):
        problems.append("train: no loss configured; set at least one of pixel_opt, perceptual_opt, fft_opt")
    for key in ("optim_g", "optim_d"):
        block = train.get(key)
        if (key == "optim_g" or block) and (block or {}).get("lr") is None:
            problems.append(f"train.{key}.lr: missing learning rate")
    if not train.get("scheduler"):
        problems.append("train.scheduler: missing (e.g. {type: MultiStepLR, milestones: [...], gamma: 0.5})")
    else:
        try:
            build_schedule(train["scheduler"], total)
        except _EXPECTED as err:
            problems.append(error_line(err))
    if cls is not None and _is_real(cls) and uses_degradation(opt):
        problems += _degradation_problems(opt)
    return problems


def _model_class(model_type: str, factory: Any, opt: Mapping[str, Any]) -> type:
    """The model class that ``MODEL_REGISTRY[model_type]`` builds; official names that ``restore`` does not train
    raise their ``NotImplementedError`` (the factory refuses before building anything)."""
    from restore.models.adversarial import GAN_MODEL_TYPES, RealESRGANModel
    from restore.models.real_esrgan import MSE_MODEL_TYPES, RealESRNetModel
    from restore.models.restoration import OFFICIAL_MODEL_TYPES, RestorationModel

    if model_type in GAN_MODEL_TYPES:
        return RealESRGANModel
    if model_type in MSE_MODEL_TYPES:
        return RealESRNetModel
    if model_type in (*OFFICIAL_MODEL_TYPES, "RestorationModel"):
        return RestorationModel
    factory(opt, None)  # the refused official names raise here
    raise NotImplementedError(f"model_type {model_type}: not trainable")


def _is_real(cls: type) -> bool:
    from restore.models.real_esrgan import RealESRNetModel

    return issubclass(cls, RealESRNetModel)


def _degradation_problems(opt: Mapping[str, Any]) -> list[str]:
    from restore.models.real_degradation import DegradationSettings, PairPool

    try:
        settings = DegradationSettings.from_options({**opt, "scale": opt.get("scale") or 4})
        batch = int(((opt.get("datasets") or {}).get("train") or {}).get("batch_size_per_gpu") or 1)
        PairPool(settings.queue_size, batch)
    except _EXPECTED as err:
        return [error_line(err)]
    return []


def _file_problems(opt: Mapping[str, Any], auto_resume: bool) -> list[str]:
    paths = opt.get("path") or {}
    keys = [f"pretrain_network_{n}" for n in ("g", "d")]
    problems = [p for p in (checkpoint_option_problem(paths.get(key), f"path.{key}") for key in keys) if p]
    resume = paths.get("resume_state")
    if not auto_resume and isinstance(resume, str) and not Path(resume).is_file():
        problems.append(f"path.resume_state: {resume}: training state file not found")
    block = (opt.get("train") or {}).get("perceptual_opt") or {}
    if block.get("type") == "PerceptualLoss" and any(
        float(block.get(k, d) or 0) > 0 for k, d in (("perceptual_weight", 1.0), ("style_weight", 0.0))
    ):
        from restore.archs.vgg.weights import TORCHVISION_FILES, resolve_vgg_weights

        vgg_type = str(block.get("vgg_type") or "vgg19")
        if vgg_type in TORCHVISION_FILES:
            try:
                resolve_vgg_weights(vgg_type, block.get("vgg_weights"))
            except FileNotFoundError as err:
                problems.append(f"train.perceptual_opt: {err}")
    return problems


def _small_images(dataset: Any, gt_size: int) -> list[tuple[str, int, int]]:
    """``(path, width, height)`` of the GT images smaller than ``gt_size`` on a side (file headers only)."""
    from restore.data.image_header import read_header

    small = []
    for gt_path, *_ in getattr(dataset, "paths", []):
        try:
            with open(gt_path, "rb") as handle:
                header = read_header(handle.read(1 << 16))
        except OSError:
            continue  # reported when the image is read
        if header is not None and header.width and header.height and min(header.width, header.height) < gt_size:
            small.append((gt_path, header.width, header.height))
    return small


def _dataset_problems(opt: Mapping[str, Any], world_size: int) -> list[str]:
    from restore.data.loader import build_dataset

    datasets = opt.get("datasets") or {}
    problems = [] if "train" in datasets else ["datasets.train: missing (the training set)"]
    for key, ds_opt in datasets.items():
        phase = str(key).split("_")[0]
        if phase not in ("train", "val", "test"):
            problems.append(f"datasets.{key}: unknown phase {phase!r}; use train, val_<n> or test_<n>")
            continue
        try:
            dataset = build_dataset(ds_opt)
        except _EXPECTED as err:
            problems.append(error_line(err))
            continue
        if key != "train":
            continue
        batch = ds_opt.get("batch_size_per_gpu")
        if not isinstance(batch, int) or batch < 1:
            problems.append(f"datasets.train.batch_size_per_gpu: expected a positive int, got {batch!r}")
            continue
        samples = len(dataset) * int(ds_opt.get("dataset_enlarge_ratio") or 1) // max(1, world_size)
        if samples < batch:
            problems.append(
                f"datasets.train: {samples} sample(s) per process per epoch ({len(dataset)} image(s)), fewer than "
                f"batch_size_per_gpu={batch}; raise dataset_enlarge_ratio or lower the batch size"
            )
        gt_size = ds_opt.get("gt_size")
        if isinstance(gt_size, int) and not getattr(dataset, "pad_small_images", True):
            small = _small_images(dataset, gt_size)
            if small:
                path, width, height = small[0]
                problems.append(
                    f"datasets.train.gt_size: {len(small)} of {len(dataset)} GT image(s) are smaller than "
                    f"{gt_size} pixels, e.g. {path} ({width}x{height}, WxH); lower gt_size or remove them"
                )
    return problems


def train_problems(opt: Mapping[str, Any], *, auto_resume: bool = False, world_size: int = 1) -> list[str]:
    """Every problem that would stop ``restore train`` before its first iteration, one line each (module doc)."""
    problems = []
    for check in (_model_problems, lambda o: _file_problems(o, auto_resume),
                  lambda o: _dataset_problems(o, world_size)):  # fmt: skip
        try:
            problems += check(opt)
        except _EXPECTED as err:  # a check tripping over a value that another check reports
            problems.append(error_line(err))
    return problems
