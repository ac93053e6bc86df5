"""Repeated detections and the calibrated confidence of detected objects
(learners/detection/calibration.py: mark_duplicates, evidence, precision_table)."""

import numpy as np

from retroscope.learners.detection.calibration import (
    MIN_FOR_PRECISION,
    confidence,
    evidence,
    mark_duplicates,
    precision_table,
)


def disc(cx, cy, r, shape=(40, 40)):
    y, x = np.mgrid[:shape[0], :shape[1]]
    return (x - cx) ** 2 + (y - cy) ** 2 <= r**2


def obj(cls, score, mask, refined=False):
    return {"class": cls, "score": score, "mask": mask, "refined": refined}


def test_repeats_point_at_the_higher_scoring_object():
    big, inner, apart = disc(20, 20, 10), disc(23, 20, 5), disc(5, 5, 3)
    objects = mark_duplicates([obj("other", 0.85, inner), obj("other", 0.95, big),
                               obj("MOT", 0.9, apart), obj("MOT", 0.8, disc(20, 20, 9))])
    # the small ring inside the big one repeats it; a MOT is another class
    assert [o["duplicate_of"] for o in objects] == [1, -1, -1, -1]
    # one fit redraws two detections with the same mask: a repeat whatever the class
    same = mark_duplicates([obj("MOT", 0.9, big), obj("BEC", 0.7, big.copy())])
    assert [o["duplicate_of"] for o in same] == [-1, 0]
    # half inside is not a repeat
    half = mark_duplicates([obj("ODT", 0.9, disc(15, 20, 6)), obj("ODT", 0.6, disc(22, 20, 6))])
    assert [o["duplicate_of"] for o in half] == [-1, -1]


def test_evidence_groups_and_their_precision():
    mask = disc(20, 20, 5)
    assert evidence(obj("MOT", 0.97, mask, refined=True), True) == "refined, score >= 0.95"
    assert evidence(obj("MOT", 0.89, mask), True) == "unrefined, score >= 0.8"
    assert evidence(obj("MOT", 0.6, mask), False) == "network, score < 0.8"
    assert evidence({**obj("MOT", 0.99, mask), "duplicate_of": 0}, True) == "duplicate"
    n = MIN_FOR_PRECISION
    table = precision_table({"a": [True] * (n - 3) + [False] * 3, "rare": [True] * (n - 1)})
    assert table["a"] == {"precision": (n - 3) / n, "objects": n}
    assert table["rare"]["precision"] is None and table["rare"]["objects"] == n - 1


def test_a_rare_group_takes_the_pooled_precision_never_nothing():
    """A refined detection scored >= 0.95 whose group had too few validation objects gets
    the precision of all refined ones, else of every object; a duplicate stays NaN."""
    n = MIN_FOR_PRECISION
    groups = {"refined, score >= 0.95": [True] * 3,
              "refined, score >= 0.8": [True] * (n - 2) + [False] * 2,
              "unrefined, score < 0.8": [False] * 4, "duplicate": [False] * 2}
    table = precision_table(groups)
    assert table["refined, any score"] == {"precision": (n + 1) / (n + 3), "objects": n + 3}
    assert table["any"]["objects"] == n + 7
    mask = disc(20, 20, 5)
    best = obj("MOT", 0.97, mask, refined=True)
    assert confidence(best, True, table) == (n + 1) / (n + 3)
    assert confidence(obj("MOT", 0.6, mask), True, table) == (n + 1) / (n + 7)
    assert np.isnan(confidence({**best, "duplicate_of": 0}, True, table))
    assert np.isnan(confidence(best, True, {}))  # a run calibrated before precisions existed
