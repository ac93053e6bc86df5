"""Absorption triplets in a watched folder are answered once all three frames are there."""

from retroscope.core.registry import get_task


def test_triplets_wait_for_their_three_frames_and_shot_files_go_alone():
    task = get_task("clouds")
    groups, waiting = task.live_groups(["image_001.tiff", "probe_001.tiff", "background_001.tiff",
                                        "image_002.tiff", "probe_002.tiff", "shot_7.h5",
                                        "notes.txt"])
    assert ["image_001.tiff", "probe_001.tiff", "background_001.tiff"] in groups
    assert ["shot_7.h5"] in groups and ["notes.txt"] in groups
    assert sorted(waiting) == ["image_002.tiff", "probe_002.tiff"]
