"""COCO-style labels of cloud frames: RLE round trip, pycocotools compatibility, atomic JSON."""

import json

import numpy as np
import pytest

from retroscope.tasks.clouds.geometry import Gaussian2D, box_xyxy
from retroscope.tasks.clouds.labels import coco_dataset, rle_decode, rle_encode, write_coco_json

H, W = 48, 64
MOT = Gaussian2D(20.3, 22.1, 9.0, 6.0, 0.4, 2.0, 0.1)
ODT = Gaussian2D(47.5, 30.2, 12.0, 2.5, -0.2, 0.7, 0.1)
EDGE = Gaussian2D(2.0, 45.0, 6.0, 4.0, 0.0, 1.0, 0.1)  # cut by the image border


def frames():
    return [{"file_name": "a.png", "height": H, "width": W,
             "clouds": [("MOT", MOT), ("ODT", ODT)]},
            {"file_name": "b.png", "height": H, "width": W, "clouds": [("BEC", EDGE)]}]


@pytest.mark.parametrize("first", [False, True])
def test_rle_round_trip_and_zero_first_convention(first):
    mask = np.random.default_rng(0).random((7, 5)) < 0.4
    mask[0, 0] = first
    rle = rle_encode(mask)
    assert rle["size"] == [7, 5] and sum(rle["counts"]) == 35
    assert (rle["counts"][0] == 0) == first
    np.testing.assert_array_equal(rle_decode(rle), mask)
    with pytest.raises(ValueError, match="rle"):
        rle_decode({"counts": [3, 4], "size": [7, 5]})


def test_coco_dataset_fields():
    data = coco_dataset(frames())
    assert [c["name"] for c in data["categories"]] == ["MOT", "ODT", "BEC"]
    assert [c["id"] for c in data["categories"]] == [1, 2, 3]
    assert [im["id"] for im in data["images"]] == [1, 2] and "info" in data
    anns = data["annotations"]
    assert [(a["id"], a["image_id"], a["category_id"]) for a in anns] == [
        (1, 1, 1), (2, 1, 2), (3, 2, 3)]
    for ann, cloud in zip(anns, (MOT, ODT, EDGE)):
        mask = cloud.mask((H, W))
        np.testing.assert_array_equal(rle_decode(ann["segmentation"]), mask)
        assert ann["area"] == int(mask.sum()) and ann["iscrowd"] == 0
        assert ann["gaussian"] == pytest.approx(cloud.to_dict())
    x0, y0, x1, y1 = box_xyxy(MOT.x0, MOT.y0, MOT.wx, MOT.wy, MOT.theta)
    assert anns[0]["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
    assert anns[2]["bbox"][0] == 0.0 and anns[2]["bbox"][1] + anns[2]["bbox"][3] == H  # clipped
    with pytest.raises(ValueError, match="class 'BEC'"):
        coco_dataset(frames(), categories=("MOT", "ODT"))
    with pytest.raises(ValueError, match="no pixel"):
        coco_dataset([{"file_name": "c", "height": H, "width": W,
                       "clouds": [("MOT", Gaussian2D(-50.0, -50.0, 3.0, 3.0))]}])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
def test_pycocotools_reads_our_rle():
    mask_utils = pytest.importorskip("pycocotools.mask")
    for ann in coco_dataset(frames())["annotations"]:
        seg = ann["segmentation"]
        rle = mask_utils.frPyObjects(seg, *seg["size"])
        decoded = mask_utils.decode(rle).astype(bool)
        np.testing.assert_array_equal(decoded, rle_decode(seg))
        assert mask_utils.area(rle) == ann["area"]


def test_write_coco_json_round_trip_and_refuses_to_overwrite(tmp_path):
    data = coco_dataset(frames())
    path = write_coco_json(tmp_path / "labels.json", data)
    assert json.loads(path.read_text()) == data
    with pytest.raises(FileExistsError, match="overwrite"):
        write_coco_json(path, {"images": []})
    assert json.loads(path.read_text()) == data  # untouched
    write_coco_json(path, {"images": []}, overwrite=True)
    assert json.loads(path.read_text()) == {"images": []}
    with pytest.raises(TypeError):
        write_coco_json(path, {"bad": object()}, overwrite=True)
    assert json.loads(path.read_text()) == {"images": []}  # a failed write leaves no trace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json"]
