"""Several models served at once: listing, per-model routes, unknown names, per-model reloads,
metrics by model, and ``masksem serve --models`` (service/model_registry.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.app import create_app
from service.model_registry import ModelFolderError, UnknownModelError, plan_models
from service.settings import ServiceSettings
from tests.service.test_service_metrics import scrape, value
from tests.service.test_service_oip import infer_body, windows
from tests.service.tiny_service import (
    LAYOUT,
    LiveServer,
    TwoModels,
    copy_model,
    random_clip,
    serve_folder,
    start_serve,
    wait_until_ready,
)
from training.export import torch_logits

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def both(two_models: TwoModels) -> Iterator[LiveServer]:
    with serve_folder(two_models.folder) as live:
        yield live


def predict_body(**extra: object) -> dict:
    bodies = [{"id": 1, "frames": random_clip(40).tolist()}]
    return {"layout": LAYOUT, "top_k": 100, "bodies": bodies, **extra}


def test_every_model_is_listed_and_ready(both: LiveServer) -> None:
    listing = httpx.get(f"{both.url}/v2/models").json()
    assert listing["default"] == "default"
    assert listing["models"] == [
        {"name": "default", "version": "1", "platform": "onnxruntime_onnx", "state": "READY",
         "ready": True},
        {"name": "pairs", "version": "7", "platform": "onnxruntime_onnx", "state": "READY",
         "ready": True},
    ]  # fmt: skip
    index = httpx.post(f"{both.url}/v2/repository/index")
    assert index.status_code == 200 and index.json() == listing["models"]
    assert httpx.get(f"{both.url}/v2/health/ready").json() == {"ready": True}
    for name, version in (("default", "1"), ("pairs", "7")):
        meta = httpx.get(f"{both.url}/v2/models/{name}").json()
        assert (meta["name"], meta["versions"]) == (name, [version])
        ready = httpx.get(f"{both.url}/v2/models/{name}/ready")
        assert ready.status_code == 200 and ready.json() == {"name": name, "ready": True}
        card = httpx.get(f"{both.url}/v1/model", params={"model": name}).json()
        assert card["version"] == version and card["runtime"]["served_as"] == name
    # the card keeps its own name; the served name is the file's stem
    assert httpx.get(f"{both.url}/v1/model").json()["name"] == "tiny"


@pytest.mark.parametrize("name", ["default", "pairs"])
def test_oip_infer_runs_the_named_model(both: LiveServer, two_models: TwoModels, name: str) -> None:
    x = windows(2, 2, seed=3)
    reply = httpx.post(f"{both.url}/v2/models/{name}/infer", json=infer_body(x))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_name"] == name
    (out,) = body["outputs"]
    expected = torch_logits(two_models.classifiers[name], x)
    assert out["shape"] == list(expected.shape)
    np.testing.assert_allclose(np.array(out["data"]).reshape(expected.shape), expected, atol=1e-4)


def test_rest_predict_takes_the_model_from_the_query_or_the_body(
    both: LiveServer, two_models: TwoModels
) -> None:
    url = f"{both.url}/v1/predict"
    replies = {
        "none": httpx.post(url, json=predict_body()),
        "body": httpx.post(url, json=predict_body(model="pairs")),
        "query": httpx.post(url, params={"model": "pairs"}, json=predict_body()),
        "both": httpx.post(url, params={"model": "pairs"}, json=predict_body(model="pairs")),
    }
    assert {k: r.status_code for k, r in replies.items()} == dict.fromkeys(replies, 200)
    expected = {"none": "default", "body": "pairs", "query": "pairs", "both": "pairs"}
    for key, name in expected.items():
        body = replies[key].json()
        assert body["model"] == name, key
        ranked = [entry["label"] for entry in body["predictions"][0]["top_k"]]
        assert sorted(ranked) == sorted(two_models.labels[name]), key
    conflict = httpx.post(url, params={"model": "default"}, json=predict_body(model="pairs"))
    assert conflict.status_code == 422 and conflict.json()["code"] == "conflicting_model"


def test_an_unknown_model_is_a_404_naming_the_served_ones(both: LiveServer) -> None:
    message = "no model 'nope'; this server serves 'default', 'pairs'"
    requests = [
        httpx.get(f"{both.url}/v2/models/nope"),
        httpx.get(f"{both.url}/v2/models/nope/ready"),
        httpx.post(f"{both.url}/v2/models/nope/infer", json=infer_body(windows(1, 1))),
        httpx.get(f"{both.url}/v1/model", params={"model": "nope"}),
        httpx.post(f"{both.url}/v1/predict", json=predict_body(model="nope")),
        httpx.post(f"{both.url}/v1/predict", params={"model": "nope"}, json=predict_body()),
        httpx.post(f"{both.url}/v1/admin/reload/nope"),
    ]
    for reply in requests:
        assert reply.status_code == 404, reply.request.url
        assert reply.json() == {"error": message, "code": "unknown_model"}


def test_metrics_are_labelled_by_model(both: LiveServer, two_models: TwoModels) -> None:
    before = scrape(both.url)
    for name, count in (("default", 3), ("pairs", 5)):
        reply = httpx.post(f"{both.url}/v2/models/{name}/infer", json=infer_body(windows(count, 1)))
        assert reply.status_code == 200
    after = scrape(both.url)

    def grew(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert grew("masksem_predictions_total", transport="oip", model="default") == 3
    assert grew("masksem_predictions_total", transport="oip", model="pairs") == 5
    for name, count in (("default", 3), ("pairs", 5)):
        assert grew("masksem_batch_size_sum", model=name) == count
        assert grew("masksem_inference_seconds_count", model=name) >= 1
        assert grew("masksem_queue_wait_seconds_count", model=name) >= 1
    info = {dict(k[1])["model"]: dict(k[1]) for k in after if k[0] == "masksem_model_info"}
    assert sorted(info) == ["default", "pairs"]
    assert (info["default"]["version"], info["pairs"]["version"]) == ("1", "7")
    assert info["pairs"]["name"] == "tiny-pairs" and info["pairs"]["file"] == "pairs.onnx"
    for name in ("default", "pairs"):
        assert value(after, "masksem_reloads_total", outcome="ok", model=name) == 1  # start-up


def test_reloading_one_model_never_interrupts_the_other(
    two_models: TwoModels, tmp_path: Path
) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    for name in ("default", "pairs"):
        copy_model(two_models.folder / f"{name}.onnx", folder / f"{name}.onnx")
    body = predict_body(model="pairs")
    answered: list[tuple[float, int, str | None]] = []  # (time, status, version) of "pairs"
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                reply = client.post(f"{live.url}/v1/predict", json=body)
                version = reply.json().get("version") if reply.status_code == 200 else None
                answered.append((time.monotonic(), reply.status_code, version))

    # the byte budget is lifted: how many requests run depends on the reloads alone
    with serve_folder(folder, rate_limit_bytes_per_s=0) as live:
        workers = [threading.Thread(target=hammer) for _ in range(2)]
        for w in workers:
            w.start()
        copy_model(two_models.next_versions["default"], folder / "default.onnx")
        reloads, spans = [], []
        for _ in range(3):
            time.sleep(0.2)
            started = time.monotonic()
            reloads.append(httpx.post(f"{live.url}/v1/admin/reload/default", timeout=30))
            spans.append((started, time.monotonic()))
        time.sleep(0.2)
        stop.set()
        for w in workers:
            w.join(30)
        default = httpx.get(f"{live.url}/v1/model").json()
        pairs = httpx.get(f"{live.url}/v1/model", params={"model": "pairs"}).json()
        metrics = scrape(live.url)
    assert [r.status_code for r in reloads] == [200, 200, 200]
    assert [r.json()["model"]["runtime"]["generation"] for r in reloads] == [2, 3, 4]
    assert [r.json()["model"]["runtime"]["served_as"] for r in reloads] == ["default"] * 3
    assert default["version"] == "2"
    assert pairs["version"] == "7" and pairs["runtime"]["generation"] == 1
    assert len(answered) > 20 and {status for _, status, _ in answered} == {200}
    assert {version for _, _, version in answered} == {"7"}
    during = [t for t, _, _ in answered if any(a <= t <= b for a, b in spans)]
    assert during, "no 'pairs' request finished while 'default' was reloading"
    assert value(metrics, "masksem_reloads_total", outcome="ok", model="default") == 4
    assert value(metrics, "masksem_reloads_total", outcome="ok", model="pairs") == 1


def test_a_reload_reads_only_the_served_folder(both: LiveServer, two_models: TwoModels) -> None:
    outside = str(two_models.next_versions["pairs"])  # a valid model, but not in the folder
    reply = httpx.post(f"{both.url}/v1/admin/reload/pairs", json={"model": outside})
    assert reply.status_code == 422 and reply.json()["code"] == "reload_refused"
    listing = httpx.get(f"{both.url}/v2/models").json()["models"]
    assert [m["version"] for m in listing] == ["1", "7"]


def test_masksem_serve_models_reloads_every_model_on_sighup(
    two_models: TwoModels, tmp_path: Path
) -> None:
    for name in ("default", "pairs"):
        copy_model(two_models.folder / f"{name}.onnx", tmp_path / f"{name}.onnx")
    process, url = start_serve(["--models", str(tmp_path)], tmp_path, MASKSEM_WARMUP_RUNS="1")

    def versions() -> dict[str, str]:
        return {m["name"]: m["version"] for m in httpx.get(f"{url}/v2/models").json()["models"]}

    try:
        wait_until_ready(process, url)
        assert versions() == {"default": "1", "pairs": "7"}
        for name in ("default", "pairs"):
            copy_model(two_models.next_versions[name], tmp_path / f"{name}.onnx")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while versions() != {"default": "2", "pairs": "8"}:
            assert time.monotonic() < deadline, f"SIGHUP did not reload both: {versions()}"
            time.sleep(0.1)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(30)


def broken_folders(two_models: TwoModels, root: Path) -> dict[str, tuple[Path, str]]:
    """Folders ``masksem serve --models`` must refuse, with the line it must print."""
    missing = root / "missing"
    empty = root / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no model here\n")
    cardless = root / "cardless"
    cardless.mkdir()
    copy_model(two_models.folder / "default.onnx", cardless / "default.onnx")
    (cardless / "lonely.onnx").write_bytes((two_models.folder / "pairs.onnx").read_bytes())
    lonely = cardless / "lonely.onnx"
    broken = root / "broken"
    broken.mkdir()
    copy_model(two_models.folder / "pairs.onnx", broken / "pairs.onnx")
    (broken / "pairs.card.json").write_text('{"name": "tiny-pairs",\n "labels": [}')
    undecided = root / "undecided"
    undecided.mkdir()
    for name in ("left", "right"):
        copy_model(two_models.folder / "pairs.onnx", undecided / f"{name}.onnx")
    return {
        "missing": (missing, f"no model folder at {missing}: pass --models DIR"),
        "empty": (empty, f"no model in {empty}: it holds no *.onnx file"),
        "cardless": (
            cardless,
            f"refusing to serve {lonely}: {lonely}: no model card at "
            f"{cardless / 'lonely.card.json'}",
        ),
        "broken": (
            broken,
            f"refusing to serve {broken / 'pairs.onnx'}: {broken / 'pairs.card.json'}: "
            "not valid JSON (line 2",
        ),
        "undecided": (
            undecided,
            f"{undecided} holds several models (left, right) and none is named 'default': "
            "set MASKSEM_DEFAULT_MODEL",
        ),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "cardless", "broken", "undecided"])
def test_masksem_serve_refuses_a_bad_models_folder_in_one_line(
    two_models: TwoModels, tmp_path: Path, case: str
) -> None:
    folder, expected = broken_folders(two_models, tmp_path)[case]
    result = subprocess.run(
        [sys.executable, "-m", "masksem.cli_serve", "--models", str(folder)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_the_default_model_setting_picks_among_several_and_the_registry_names_them(
    two_models: TwoModels,
) -> None:
    def settings(**fields: object) -> ServiceSettings:
        return ServiceSettings(**{"model": None, "models": two_models.folder, **fields})  # type: ignore[arg-type]

    assert plan_models(settings()).default_name == "default"  # the file named default
    assert plan_models(settings(default_model="pairs")).default_name == "pairs"
    with pytest.raises(ModelFolderError, match="MASKSEM_DEFAULT_MODEL is 'nope', which is not"):
        plan_models(settings(default_model="nope"))
    with pytest.raises(ModelFolderError, match="MASKSEM_DEFAULT_MODEL is 'nope'"):
        create_app(settings(default_model="nope"))  # refused before any model loads
    registry = create_app(settings(default_model="pairs")).state.masksem.models
    assert (registry.names, registry.default_name) == (["default", "pairs"], "pairs")
    assert registry.get("default") is registry.slots["default"]
    with pytest.raises(UnknownModelError, match="this server serves 'default', 'pairs'"):
        registry.get("nope")
    single = settings(models=None, model=two_models.folder / "pairs.onnx")
    plan = plan_models(single)
    assert (plan.files, plan.default_name) == ({"pairs": two_models.folder / "pairs.onnx"}, "pairs")


def test_with_no_model_named_the_checkout_models_are_served() -> None:
    with serve_folder(None) as live:
        listing = httpx.get(f"{live.url}/v2/models").json()
        cards = {
            name: httpx.get(f"{live.url}/v1/model", params={"model": name}).json()
            for name in ("default", "interaction")
        }
        ready = httpx.get(f"{live.url}/v2/health/ready").status_code
    assert listing["default"] == "default" and ready == 200
    assert [(m["name"], m["ready"]) for m in listing["models"]] == [
        ("default", True),
        ("interaction", True),
    ]
    assert cards["default"]["name"] == "utd-gesture" and cards["default"]["window"]["persons"] == 1
    assert cards["interaction"]["name"] == "pku-interactions"
    assert cards["interaction"]["window"]["persons"] == 2
