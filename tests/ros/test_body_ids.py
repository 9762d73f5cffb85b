"""REP 155 body ids: tracker ids become stable 5-letter ids; valid ids pass through."""

from __future__ import annotations

import pytest
from masksem_ros.body_ids import body_id_for, derived_body_id, is_ros_name_token


def test_a_tracker_id_gets_five_lower_case_letters_the_same_every_time() -> None:
    ids = [body_id_for(tracker) for tracker in range(1, 51)]
    assert all(len(i) == 5 and i.isascii() and i.isalpha() and i.islower() for i in ids)
    assert len(set(ids)) == len(ids)  # the first 50 tracker ids never share a topic
    assert ids == [body_id_for(tracker) for tracker in range(1, 51)]
    assert body_id_for(7) == body_id_for("7") == derived_body_id(7)


@pytest.mark.parametrize("given", ["kzrwa", "person_2", "Body7"])
def test_an_id_that_can_name_a_topic_is_kept(given: str) -> None:
    assert is_ros_name_token(given)
    assert body_id_for(given) == given


@pytest.mark.parametrize("given", ["1", "", "body-1", "a__b", "_x", "x_", "a/b", "bödy"])
def test_an_id_that_cannot_name_a_topic_is_replaced(given: str) -> None:
    assert not is_ros_name_token(given)
    derived = body_id_for(given)
    assert is_ros_name_token(derived) and len(derived) == 5
