"""worker/dataset_size.py: the training images a data.yaml names, in Ultralytics' two forms (a directory of
images, a .txt list of image paths), counted on real files."""

from __future__ import annotations

from worker import offline
from worker.dataset_size import train_images
from worker.datasets import write_synthetic


def test_counts_a_directory_of_images_and_a_txt_list(tmp_path):
    offline.prepare(tmp_path / "home")
    write_synthetic(tmp_path / "ds", 10, 32)
    assert train_images(tmp_path / "ds" / "data.yaml") == 10  # train: images/train (10; val has its own)

    images = sorted((tmp_path / "ds" / "images" / "train").glob("*.jpg"))[:4]
    (tmp_path / "ds" / "some.txt").write_text("".join(f"{p}\n" for p in images) + "\n")
    listed = (tmp_path / "ds" / "data.yaml").read_text().replace("train: images/train", "train: some.txt")
    (tmp_path / "ds" / "listed.yaml").write_text(listed)
    assert train_images(tmp_path / "ds" / "listed.yaml") == 4
