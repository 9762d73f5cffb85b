"""The streams study's reading of its rows: the issue's two questions (does a pre-trained arm
beat scratch on 10 % of the labels by more than the seed spread, is its linear probe above the
floor) and the pre-training length table, paired with scratch of the same seed."""

from __future__ import annotations

from typing import Any

from benchmarks.pretrain_streams import length_table, verdicts

PKU = "pku-interactions"


def row(protocol: str, method: str, seed: int, top1: float) -> dict[str, Any]:
    return {"dataset": PKU, "protocol": protocol, "method": method, "seed": seed, "top1": top1}


def result(rows: list[dict[str, Any]], length: list[dict[str, Any]]) -> dict[str, Any]:
    budget = {"length_protocols": ["linear", "semi10"]}
    return {"rows": rows, "length": length, "floor": {PKU: 0.6}, "budget": budget}


def test_a_gain_counts_only_beyond_the_seed_spread_and_a_probe_only_above_the_floor() -> None:
    scratch = [0.60, 0.62, 0.64]  # standard deviation 0.02
    rows = [row("semi10", "scratch", s, v) for s, v in enumerate(scratch)]
    rows += [row("semi10", "mamp", s, v + 0.10) for s, v in enumerate(scratch)]
    rows += [row("semi10", "masksem", s, v + d) for s, (v, d) in
             enumerate(zip(scratch, [0.03, 0.01, -0.01], strict=True))]  # fmt: skip
    rows += [row("linear", "mamp", s, 0.55) for s in range(3)]
    rows += [row("linear", "masksem", s, 0.65) for s in range(3)]
    lines = verdicts(result(rows, []))
    mamp = next(line for line in lines if line.startswith("- mamp, 10 %"))
    masksem = next(line for line in lines if line.startswith("- masksem, 10 %"))
    assert "+0.100" in mamp and "3 positive" in mamp and "beats scratch" in mamp
    assert "+0.010" in masksem and "2 positive" in masksem and "does not beat" in masksem
    assert "- mamp, linear: 0.550, below the nearest-neighbour floor 0.600." in lines
    assert "- masksem, linear: 0.650, above the nearest-neighbour floor 0.600." in lines
    assert not any(line.startswith("- masksem-top") for line in lines)  # no rows, no verdict


def test_the_length_table_pairs_each_length_and_seed_with_scratch_of_that_seed() -> None:
    rows = [row("semi10", "scratch", 0, 0.70), row("semi10", "scratch", 1, 0.50)]
    length = [
        {**row(p, "mamp", seed, v), "pretrain_epochs": e, "pretrain_loss": loss}
        for e, seed, loss, p, v in [
            (72, 0, 0.61, "linear", 0.58), (24, 0, 0.75, "linear", 0.52),
            (72, 0, 0.61, "semi10", 0.71), (24, 0, 0.75, "semi10", 0.66),
            (72, 1, 0.62, "linear", 0.60), (72, 1, 0.62, "semi10", 0.47),
        ]
    ]  # fmt: skip
    lines = length_table(result(rows, length))
    table = [line for line in lines if line.startswith("| ") and "---" not in line]
    assert table[0] == "| pre-training epochs | seed | last-epoch loss | linear | semi10 |"
    # scratch has no linear row; each seed's 10 % row is beside its own scratch
    assert table[1:] == [
        "| 24 | 0 | 0.750 | 0.520 | 0.660 (0.700) |",
        "| 72 | 0 | 0.610 | 0.580 | 0.710 (0.700) |",
        "| 72 | 1 | 0.620 | 0.600 | 0.470 (0.500) |",
        # (0.71 - 0.70 + 0.47 - 0.50) / 2; no scratch to pair the probe with
        "| 72 | mean minus scratch | - | - | -0.010 |",
    ]
    assert length_table(result(rows, [])) == []
