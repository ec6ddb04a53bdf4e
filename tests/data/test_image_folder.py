"""Image folder trees: the Kaggle layout, ImageFolder trees, order, laziness and bad input."""

import numpy as np
import pytest
from PIL import Image

from medleak.data import DataSpec, open_dataset, select_batch
from medleak.errors import DataError


def _open(path, **kwargs):
    return open_dataset(DataSpec(source=str(path), image_size=kwargs.pop("size", 16), **kwargs), 0)


def test_kaggle_layout_defaults_to_the_test_split(kaggle_tree):
    dataset = _open(kaggle_tree)
    assert len(dataset) == 8
    assert "[test]" in dataset.name
    batch = dataset.load(range(8))
    assert batch.images.shape == (8, 1, 16, 16) and batch.images.dtype.is_floating_point
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0


def test_kaggle_split_is_chosen_by_name(kaggle_tree):
    train = _open(kaggle_tree, split="train")
    assert [e.source for e in train.entries] == [
        "NORMAL/IM-0900-0001.jpeg",
        "PNEUMONIA/person9_virus_9.jpeg",
    ]
    assert len(_open(kaggle_tree, split="VAL")) == 2


def test_unknown_split_lists_those_present(kaggle_tree):
    with pytest.raises(DataError, match="split 'dev' not found.*test, train, val"):
        _open(kaggle_tree, split="dev")


def test_a_folder_holding_the_unzipped_kaggle_folder_is_looked_through(kaggle_tree):
    assert len(_open(kaggle_tree.parent)) == 8


def test_balanced_order_alternates_then_appends_the_longer_class(kaggle_tree):
    entries = _open(kaggle_tree).entries
    assert [e.label for e in entries] == [0, 1, 0, 1, 0, 1, 1, 1]
    # sorted by file name within each class
    assert [e.source for e in entries][:4] == [
        "NORMAL/IM-0001-0001.jpeg",
        "PNEUMONIA/person1_bacteria_1.jpeg",
        "NORMAL/IM-0003-0001.png",
        "PNEUMONIA/person1_bacteria_2.jpeg",
    ]


def test_sorted_order_keeps_each_class_in_a_block(kaggle_tree):
    entries = _open(kaggle_tree, order="sorted").entries
    assert [e.label for e in entries] == [0, 0, 0, 1, 1, 1, 1, 1]
    assert entries[2].source == "NORMAL/NORMAL2-IM-0105-0001.jpeg"


def test_select_batch_takes_consecutive_images_from_the_offset(kaggle_tree):
    dataset = _open(kaggle_tree)
    batch = select_batch(dataset, 3, offset=2)
    assert batch.sources == tuple(e.source for e in dataset.entries[2:5])
    assert batch.labels.tolist() == [0, 1, 0]


def test_patients_are_parsed_from_kaggle_names(kaggle_tree):
    patients = {e.source: e.patient for e in _open(kaggle_tree).entries}
    assert patients["PNEUMONIA/person1_bacteria_1.jpeg"] == "person1"
    assert patients["PNEUMONIA/person1_bacteria_2.jpeg"] == "person1"
    assert patients["NORMAL/NORMAL2-IM-0105-0001.jpeg"] == "NORMAL2-IM-0105"
    assert patients["NORMAL/IM-0001-0001.jpeg"] == "IM-0001"


def test_other_names_have_no_patient(tmp_path, image_writer):
    image_writer(tmp_path / "NORMAL" / "scan_a.png")
    assert _open(tmp_path).entries[0].patient is None


def test_gray_rgb_and_16_bit_are_scaled_to_unit_range(tmp_path, image_writer):
    image_writer(tmp_path / "NORMAL" / "a_gray.png", "gray", (19, 16), value=51)
    image_writer(tmp_path / "NORMAL" / "b_red.png", "rgb", (16, 21), value=(255, 0, 0))
    image_writer(tmp_path / "NORMAL" / "c_sixteen.png", "16", (17, 17), value=32768)
    batch = _open(tmp_path, size=8).load([0, 1, 2])
    means = batch.images.mean(dim=(1, 2, 3)).tolist()
    assert means == pytest.approx([51 / 255, 0.299, 32768 / 65535], abs=2e-3)


def test_imagefolder_names_normal_and_pneumonia_in_any_case(tmp_path, image_writer):
    image_writer(tmp_path / "pneumonia" / "a.png")
    image_writer(tmp_path / "Normal" / "b.png")
    dataset = _open(tmp_path)
    assert {e.source: e.label for e in dataset.entries} == {"Normal/b.png": 0, "pneumonia/a.png": 1}
    assert dataset.classes == ("NORMAL", "PNEUMONIA")


def test_only_a_pneumonia_folder_is_still_label_one(tmp_path, image_writer):
    image_writer(tmp_path / "PNEUMONIA" / "a.png")
    assert _open(tmp_path).entries[0].label == 1


def test_other_class_names_are_labelled_in_sorted_order(tmp_path, image_writer):
    for name in ("viral", "bacterial", "healthy"):
        image_writer(tmp_path / name / "x.png")
    dataset = _open(tmp_path, order="sorted")
    assert [(e.source, e.label) for e in dataset.entries] == [
        ("bacterial/x.png", 0),
        ("healthy/x.png", 1),
        ("viral/x.png", 2),
    ]


def test_images_in_nested_folders_and_junk_files(tmp_path, image_writer):
    image_writer(tmp_path / "NORMAL" / "ward1" / "a.jpeg")
    (tmp_path / "NORMAL" / ".DS_Store").write_bytes(b"\0junk")
    (tmp_path / "NORMAL" / "Thumbs.db").write_bytes(b"\0junk")
    assert [e.source for e in _open(tmp_path).entries] == ["NORMAL/ward1/a.jpeg"]


def test_crop_keeps_the_centre_and_squash_the_whole_width(tmp_path):
    # 20 rows x 40 columns: white outer quarters, black centre half
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, :10] = pixels[:, 30:] = 255
    (tmp_path / "NORMAL").mkdir()
    Image.fromarray(pixels).save(tmp_path / "NORMAL" / "wide.png")
    cropped = _open(tmp_path, size=10, resize="crop").load([0]).images
    squashed = _open(tmp_path, size=10, resize="squash").load([0]).images
    assert float(cropped.mean()) < 0.02  # only the black centre survives the crop
    assert float(squashed.mean()) == pytest.approx(0.5, abs=0.03)
    assert float(squashed[0, 0, :, 0].mean()) > 0.95  # the white left edge is still there


def test_opening_is_lazy_and_a_corrupt_file_is_named_when_loaded(tmp_path, image_writer):
    image_writer(tmp_path / "NORMAL" / "a.png")
    (tmp_path / "PNEUMONIA").mkdir()
    (tmp_path / "PNEUMONIA" / "broken.jpeg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    dataset = _open(tmp_path, order="sorted")  # listing does not decode
    assert dataset.load([0]).sources == ("NORMAL/a.png",)
    with pytest.raises(DataError, match=r"PNEUMONIA/broken\.jpeg: not a readable image"):
        dataset.load([1])


def test_truncated_png_is_a_data_error(tmp_path, image_writer):
    path = image_writer(tmp_path / "NORMAL" / "cut.png", size=(64, 64))
    path.write_bytes(path.read_bytes()[:80])
    with pytest.raises(DataError, match="cut.png"):
        _open(tmp_path).load([0])


def test_a_non_image_file_is_named(tmp_path, image_writer):
    image_writer(tmp_path / "NORMAL" / "a.png")
    (tmp_path / "NORMAL" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"NORMAL/notes\.txt: not an image file"):
        _open(tmp_path)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "no class subfolders"),
        (lambda p: (p / "NORMAL").mkdir(parents=True), "holds no images"),
    ],
)
def test_missing_and_empty_folders(tmp_path, build, words):
    target = tmp_path / "data"
    build(target)
    with pytest.raises(DataError, match=words) as info:
        _open(target)
    assert "\n" not in str(info.value)


def test_loose_images_without_class_folders(tmp_path, image_writer):
    image_writer(tmp_path / "a.png")
    with pytest.raises(DataError, match="no class subfolders"):
        _open(tmp_path)


def test_a_single_image_file_is_not_a_data_set(tmp_path, image_writer):
    path = image_writer(tmp_path / "one.png")
    with pytest.raises(DataError, match="single image"):
        _open(path)
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported data source"):
        _open(other)


def test_select_batch_errors_say_how_many_images_there_are(kaggle_tree):
    dataset = _open(kaggle_tree)
    with pytest.raises(DataError, match="needs 10 images, but .* has 8"):
        select_batch(dataset, 4, offset=6)
    with pytest.raises(DataError, match="offset 8 is out of range: .* has 8 images"):
        select_batch(dataset, 1, offset=8)
    with pytest.raises(DataError, match="offset -1"):
        select_batch(dataset, 1, offset=-1)
    with pytest.raises(DataError, match="batch size must be an integer >= 1"):
        select_batch(dataset, 0)
    with pytest.raises(DataError, match="out of range"):
        dataset.load([8])
