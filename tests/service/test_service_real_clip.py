"""Real UTD-MHAD test clips through the WebSocket and REST give exactly the offline answer
(``masksem evaluate``'s path: SkeletonFeeder windows through the PyTorch classifier)."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
import torch
import websockets

from service.stream import softmax
from skeleton.clip import rotate, rotation_matrix
from tests.service.tiny_service import LAYOUT, WINDOW, LiveServer, TinyModel
from training.data.feeder import SkeletonFeeder
from training.data.types import SkeletonDataset
from training.recipes.evaluate import predict


async def stream_clip(url: str, clip: np.ndarray, labels: int) -> dict:
    """Send the clip at 30 fps timestamps; with stride = its length the one prediction comes
    at its last frame and covers all of it."""
    async with websockets.connect(f"{url}/v1/stream") as ws:
        config = {
            "type": "config",
            "layout": LAYOUT,
            "stride": len(clip),
            "min_frames": 1,
            "window_s": 10.0,
            "top_k": labels,
        }
        await ws.send(json.dumps(config))
        for i, joints in enumerate(clip):
            body = {"id": "person", "joints": joints.tolist()}
            await ws.send(json.dumps({"type": "frame", "timestamp": i / 30, "bodies": [body]}))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "prediction":
                return message


def rest_probabilities(url: str, clip: np.ndarray, labels: tuple[str, ...]) -> list[float]:
    """POST one person's frames to /v1/predict; the probability of every label, in order."""
    body = {"layout": LAYOUT, "top_k": len(labels),
            "bodies": [{"id": "person", "frames": clip.tolist()}]}  # fmt: skip
    reply = httpx.post(f"{url}/v1/predict", json=body).json()["predictions"][0]
    ranked = dict((t["label"], t["probability"]) for t in reply["top_k"])
    return [ranked[name] for name in labels]


def test_stream_and_rest_equal_offline_evaluation(
    utd_dataset: SkeletonDataset, tiny_model: TinyModel, server: LiveServer
) -> None:
    if utd_dataset.layout != LAYOUT:
        pytest.skip(f"the tiny model is {LAYOUT}, the dataset {utd_dataset.layout}")
    samples = [utd_dataset.test[i] for i in (0, 101, 257)]
    feeder = SkeletonFeeder(samples, WINDOW, train=False)
    offline = softmax(predict(tiny_model.classifier, feeder, torch.device("cpu")))
    labels = tiny_model.card.labels
    for sample, expected in zip(samples, offline, strict=True):
        clip = sample.data[0]  # one person, (T, 20, 3)
        streamed = asyncio.run(stream_clip(server.ws_url, clip, len(labels)))
        assert streamed["window"]["frames"] == len(clip)
        got = dict((t["label"], t["probability"]) for t in streamed["top_k"])
        np.testing.assert_allclose([got[name] for name in labels], expected, atol=1e-5)
        assert streamed["label"] == labels[int(np.argmax(expected))]
        rest = rest_probabilities(server.url, clip, labels)
        np.testing.assert_allclose(rest, expected, atol=1e-5)
        np.testing.assert_allclose(  # the two transports share one path: equal to rounding
            rest, [got[name] for name in labels], atol=1e-7
        )


def test_a_camera_turned_about_the_person_gives_the_same_answer(
    utd_dataset: SkeletonDataset, tiny_model: TinyModel, server: LiveServer
) -> None:
    """The window turns every body to face the sensor (the card's face_pairs), so a robot seeing
    the person from 70 degrees to the side, from elsewhere in the room, gets the probabilities
    of the front view."""
    clip = utd_dataset.test[42].data[0]  # (T, 20, 3)
    side = rotate(clip, rotation_matrix(0.0, np.radians(70.0), 0.0)) + np.float32([0.8, 0.1, 1.5])
    labels = tiny_model.card.labels
    np.testing.assert_allclose(
        rest_probabilities(server.url, side, labels),
        rest_probabilities(server.url, clip, labels),
        atol=1e-5,
    )
