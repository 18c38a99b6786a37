"""Make Ultralytics and W&B work without a network, from project-owned directories.

Call ``prepare(home)`` before anything imports ``ultralytics``: several of its
settings are read once at import time (``YOLO_OFFLINE``, ``YOLO_CONFIG_DIR``).
Workers have no internet and no pretrained weights, so every code path that
would download (fonts, AMP-check weights, pip auto-updates, analytics) is
switched off or given a local answer here.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# Fonts Ultralytics looks for in its config dir before trying to download them.
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
# Ultralytics integrations we turn off: we log to W&B ourselves, and the rest would try the network.
DISABLED_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
# GPUs on which Ultralytics itself disables AMP (same list as ultralytics.utils.checks.check_amp).
AMP_BROKEN_GPUS = re.compile(
    r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)", re.IGNORECASE
)


def config_dir(home: Path) -> Path:
    """Where Ultralytics keeps its settings.json and fonts (``$YOLO_CONFIG_DIR/Ultralytics``)."""
    return home / "ultralytics" / "Ultralytics"


_prepared_before_import = False  # this process (or the warm-start process it forked from) did it right


def prepare(home: Path) -> None:
    """Set the environment for offline training; idempotent; call before importing ultralytics."""
    global _prepared_before_import
    if "ultralytics" not in sys.modules:
        _prepared_before_import = True
    elif not _prepared_before_import:
        # Too late for the import-time switches; say so instead of silently going online.
        log.warning("ultralytics was imported before worker.offline.prepare(); offline switches may not apply")
    os.environ["YOLO_OFFLINE"] = "1"  # no DNS probe, no hub/analytics traffic
    os.environ["YOLO_AUTOINSTALL"] = "False"  # never pip-install missing packages at run time
    os.environ["YOLO_CONFIG_DIR"] = str(home / "ultralytics")
    # Every checkpoint Ultralytics loads (weights, resumes, its own final validation) goes through
    # torch.load(weights_only=True) with its allow-list of model classes: a pickle that would run
    # code is refused. Read once, at import (ultralytics.utils.SAFE_LOAD).
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    os.environ.setdefault("WANDB_MODE", "offline")
    install_fonts(config_dir(home))


def install_fonts(directory: Path) -> None:
    """Put matplotlib's DejaVuSans where Ultralytics looks for Arial, so it never downloads a font."""
    directory.mkdir(parents=True, exist_ok=True)
    missing = [name for name in FONT_NAMES if not (directory / name).is_file()]
    if not missing:
        return
    import matplotlib  # a dependency of ultralytics, so always present in the worker image

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        # Copy then rename: two workers starting together never see half a font.
        fd, partial = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        os.close(fd)
        shutil.copyfile(source, partial)
        os.replace(partial, directory / name)


def configure_ultralytics(home: Path) -> None:
    """After import: disable integrations and analytics, keep dirs under LAXAI_HOME, avoid the AMP download."""
    from ultralytics.utils import SETTINGS

    wanted: dict[str, object] = {key: False for key in DISABLED_INTEGRATIONS}
    wanted.update(
        sync=False,  # anonymous usage analytics
        runs_dir=str(home / "runs"),
        datasets_dir=str(home / "datasets"),
        weights_dir=str(home / "weights"),
    )
    # Ultralytics rewrites settings.json on every update (not atomically): only write when something differs,
    # so concurrent workers after the first run never touch the file.
    changed = {key: value for key, value in wanted.items() if SETTINGS.get(key) != value}
    if changed:
        SETTINGS.update(changed)
    _avoid_amp_download()
    require_safe_load()
    _safe_checkpoint_rewrites()


def _safe_checkpoint_rewrites() -> None:
    """Route the one Ultralytics load that ignores ULTRALYTICS_SAFE_LOAD through the safe loader too:
    ``strip_optimizer``, which rewrites last.pt and best.pt after training (with weights_only=False)."""
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics.nn.tasks import _SafeLoad

    original = torch_utils.torch_load
    if getattr(original, "_laxai_safe", False):
        return

    def torch_load_safely(f, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - torch.load's signature
        kwargs["weights_only"] = True
        with _SafeLoad.loading(f):  # registers the allow-listed classes the file references
            return original(f, *args, **kwargs)

    torch_load_safely._laxai_safe = True  # type: ignore[attr-defined]
    torch_utils.torch_load = torch_load_safely


def require_safe_load() -> None:
    """Refuse to train when Ultralytics loads checkpoints unsafely (imported before ``prepare``, or a
    torch too old for restricted loading): a user's weights could then run code in the worker."""
    from ultralytics.nn import tasks

    if not (tasks.SAFE_LOAD and tasks._SafeLoad.SUPPORTED):
        raise RuntimeError("Ultralytics safe loading is off (ULTRALYTICS_SAFE_LOAD must be set before ultralytics "
                           "is imported, and torch must be 2.6 or newer); refusing to load checkpoints")


def _avoid_amp_download() -> None:
    """Replace the trainer's AMP check, which downloads yolo26n.pt to compare FP32 and FP16 outputs.

    Offline, Ultralytics' own check ends with "checks skipped, offline" and keeps AMP on, after trying
    the download (with retries). We give the same answer without the attempt: AMP off on CPU/MPS and on
    GPUs Ultralytics knows to be broken, on elsewhere. With the weights present locally the real check runs.
    """
    import ultralytics.engine.trainer as trainer_module
    from ultralytics.utils import checks

    original = checks.check_amp
    if getattr(trainer_module.check_amp, "_laxai_offline", False):
        return

    def check_amp_offline(model) -> bool:  # noqa: ANN001 - an Ultralytics model
        import torch
        from ultralytics.utils import WEIGHTS_DIR

        if (WEIGHTS_DIR / "yolo26n.pt").is_file():
            return original(model)
        device = next(model.parameters()).device
        if device.type != "cuda":
            return False
        gpu = torch.cuda.get_device_name(device)
        if AMP_BROKEN_GPUS.search(gpu):
            log.warning("AMP disabled: Ultralytics reports AMP problems on %s", gpu)
            return False
        log.info("AMP on (offline: the weights-based AMP self-test is skipped)")
        return True

    check_amp_offline._laxai_offline = True  # type: ignore[attr-defined]
    trainer_module.check_amp = check_amp_offline
