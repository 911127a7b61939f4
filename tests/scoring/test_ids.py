"""Identifiers: unique, well-formed, and decision ids ordered by the time they were made."""

from __future__ import annotations

import re
import time
import uuid

from scoring import ids


def test_decision_ids_are_unique_version_7_uuids_ordered_by_time():
    first = [ids.decision_id() for _ in range(10_000)]
    time.sleep(0.002)
    later = ids.decision_id()

    assert len(set(first)) == len(first)
    parsed = uuid.UUID(later)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert str(parsed) == later
    assert max(first) < later  # a later millisecond sorts after every earlier id
    made_ms = int(later.replace("-", "")[:12], 16)
    assert abs(made_ms - time.time_ns() // 1_000_000) < 60_000


def test_request_and_application_ids_have_their_shapes_and_do_not_repeat():
    requests = {ids.request_id() for _ in range(10_000)}
    applications = {ids.application_id() for _ in range(10_000)}

    assert len(requests) == len(applications) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in requests)
    assert all(re.fullmatch(r"APP-[0-9a-f]{12}", a) for a in applications)


def test_a_request_id_the_client_sent_is_kept():
    assert ids.request_id(b"lender-req-7") == "lender-req-7"
    assert re.fullmatch(r"[0-9a-f]{32}", ids.request_id(b""))


def _untemper(y: int) -> int:
    # the inverse of the Mersenne Twister's output tempering
    def unshift_right(value: int, shift: int) -> int:
        result = value
        for _ in range(32 // shift + 1):
            result = value ^ (result >> shift)
        return result

    def unshift_left(value: int, shift: int, mask: int) -> int:
        result = value
        for _ in range(32 // shift + 1):
            result = value ^ ((result << shift) & mask & 0xFFFFFFFF)
        return result

    y = unshift_right(y, 18)
    y = unshift_left(y, 15, 0xEFC60000)
    y = unshift_left(y, 7, 0x9D2C5680)
    return unshift_right(y, 11)


def test_ids_cannot_be_predicted_from_the_request_ids_the_service_answers_with():
    import random

    seen = [int(ids.request_id(), 16) for _ in range(156)]  # 624 words, if they were MT's
    words = [(v >> (32 * k)) & 0xFFFFFFFF for v in seen for k in range(4)]
    clone = random.Random()
    clone.setstate((3, (*[_untemper(w) for w in words], 624), None))

    predicted = f"{clone.getrandbits(128):032x}"

    assert predicted != ids.request_id()
