"""Your own recordings to a served model, as a user runs it: real SBU clips (15 fps, 15 joints,
one person each) written into the folder format, then `masksem pretrain`, `finetune`,
`evaluate` and `export`, then the service's REST answer compared with the evaluation's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from masksem.cli import app
from service.app import create_app
from service.settings import ServiceSettings
from service.stream import softmax
from skeleton.card import load_card
from training.data.feeder import SkeletonFeeder
from training.data.folder import write_folder
from training.data.registry import load_dataset
from training.data.types import Sample, SkeletonDataset
from training.recipes.evaluate import load_classifier, predict

# No joints or persons: the model takes them from the data (sbu15, one person).
MODEL = {"frames": 16, "width": 32, "depth": 2, "heads": 2, "decoder_width": 32,
         "decoder_depth": 1}  # fmt: skip
LOOP = {"epochs": 2, "warmup_epochs": 1, "batch_size": 8, "lr": 1e-3, "lr_batch": 8,
        "min_lr": 1e-4, "checkpoint_every": 1, "threads": 1}  # fmt: skip


def one_person_folder(root: Path) -> SkeletonDataset:
    """SBU fold 1, the first actor of each clip, written as a folder (fps column 15)."""
    sbu = load_dataset("sbu")
    assert sbu.fps == 15.0

    def first_actor(samples: list[Sample]) -> list[Sample]:
        return [Sample(s.name, s.data[:1].copy(), s.label, s.subject, s.view) for s in samples]

    mine = SkeletonDataset(
        name="mine", layout="sbu15", classes=sbu.classes, train=first_actor(sbu.train[:48]),
        test=first_actor(sbu.test[:16]), fps=sbu.fps,
    )  # fmt: skip
    write_folder(mine, root)
    return mine


def masksem(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def recipe(path: Path, folder: Path, **fields: object) -> Path:
    data = {"dataset": "folder", "root": str(folder), "options": {"layout": "sbu15"},
            "frames": 16, "min_crop_frames": 8, "normalise_scale": True}  # fmt: skip
    path.write_text(yaml.safe_dump({"data": data, "model": MODEL, "loop": LOOP, **fields}))
    return path


def test_own_folder_pretrain_finetune_evaluate_export_serve(
    data_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "my-recordings"
    one_person_folder(folder)
    assert "fps" in (folder / "manifest.csv").read_text().splitlines()[0]

    pre = tmp_path / "pre"
    masksem("pretrain", "-c", recipe(tmp_path / "pre.yaml", folder, name="mine-mamp"),
            "-o", pre, "--device", "cpu")  # fmt: skip
    assert (pre / "encoder.pt").stat().st_size < (pre / "checkpoint.pt").stat().st_size

    ft = tmp_path / "ft"
    ft_recipe = recipe(tmp_path / "ft.yaml", folder, name="mine-ft", eval_every=1, hidden=64)
    masksem("finetune", "-c", ft_recipe, "--pretrained", pre / "encoder.pt", "-o", ft,
            "--device", "cpu")  # fmt: skip
    checkpoint = ft / "classifier.pt"

    evaluated = json.loads(masksem("evaluate", "--checkpoint", checkpoint).splitlines()[-1])
    assert evaluated["clips"] == 16

    onnx = tmp_path / "mine.onnx"
    masksem("export", "--checkpoint", checkpoint, "-o", onnx)
    card = load_card(onnx)
    assert card.fps == 15.0 and card.layout == "sbu15"
    assert card.window.persons == 1 and card.input_shape[3] == 15
    assert card.metrics["torch"]["top1"] == pytest.approx(evaluated["top1"])

    # The evaluation's own answer per clip: the checkpoint on the folder's test split.
    classifier, meta = load_classifier(checkpoint)
    served_data = load_dataset("folder", folder, layout="sbu15")
    feeder = SkeletonFeeder(served_data.test, meta.window_spec, train=False)
    offline = softmax(predict(classifier, feeder))
    labels = card.labels
    settings = ServiceSettings(model=onnx, warmup_runs=1)  # type: ignore[call-arg]
    hits = 0
    with TestClient(create_app(settings)) as client:
        for sample, expected in zip(served_data.test, offline, strict=True):
            body = {"layout": "sbu15", "top_k": len(labels),
                    "bodies": [{"id": "p", "frames": sample.data[0].tolist()}]}  # fmt: skip
            reply = client.post("/v1/predict", json=body)
            assert reply.status_code == 200, reply.text
            top = reply.json()["predictions"][0]["top_k"]
            got = dict((t["label"], t["probability"]) for t in top)
            np.testing.assert_allclose([got[name] for name in labels], expected, atol=1e-5)
            hits += top[0]["label"] == served_data.classes[sample.label]
    assert hits / len(served_data.test) == pytest.approx(evaluated["top1"])
