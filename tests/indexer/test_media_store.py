"""The media store writes real image files that the reranker can read back."""

from __future__ import annotations

import pytest
from PIL import Image

from indexer.media_store import THUMBNAIL_SIZE, MediaStore
from indexer.units import IMAGE, PAGE, TEXT, VIDEO, Unit

UID = "3f2a0c1e-0000-4000-8000-000000000001"


def test_page_is_lossless_and_has_a_thumbnail(tmp_path):
    page = Image.new("RGB", (640, 832), "white")
    page.putpixel((10, 10), (1, 2, 3))
    refs = MediaStore(tmp_path).put(UID, Unit(0, PAGE, "Report", image=page, page=1))
    store = MediaStore(tmp_path)
    with Image.open(store.resolve(refs.image)) as saved:
        assert saved.format == "PNG" and saved.size == (640, 832)
        assert saved.convert("RGB").getpixel((10, 10)) == (1, 2, 3)
    with Image.open(store.resolve(refs.thumbnail)) as thumb:
        assert max(thumb.size) == THUMBNAIL_SIZE
    assert store.unit_ids() == {UID}


def test_video_keyframes_are_kept_in_order(tmp_path):
    frames = tuple(Image.new("RGB", (64, 64), (i * 60, 0, 0)) for i in range(3))
    unit = Unit(0, VIDEO, "clip", frames=frames, timestamps=(0.0, 1.0, 2.0), start_s=0.0, end_s=3.0)
    store = MediaStore(tmp_path)
    refs = store.put(UID, unit)
    assert [r.rsplit("/", 1)[1] for r in refs.frames] == ["frame-000.jpg", "frame-001.jpg", "frame-002.jpg"]
    reds = [Image.open(store.resolve(r)).getpixel((32, 32))[0] for r in refs.frames]
    assert reds == sorted(reds) and reds[2] > 100
    assert refs.image is None and refs.thumbnail is not None


def test_text_units_have_no_media(tmp_path):
    refs = MediaStore(tmp_path).put(UID, Unit(0, TEXT, "notes", text="hello"))
    assert refs.image is None and refs.thumbnail is None and refs.frames == ()
    assert not any(tmp_path.iterdir())


def test_delete_removes_the_unit_folder_and_tolerates_missing_ones(tmp_path):
    store = MediaStore(tmp_path)
    store.put(UID, Unit(0, IMAGE, "photo", image=Image.new("RGB", (32, 32))))
    store.delete([UID, "ffffffff-0000-4000-8000-000000000000"])
    assert store.unit_ids() == set()


def test_no_temporary_files_are_left_behind(tmp_path):
    store = MediaStore(tmp_path)
    store.put(UID, Unit(0, IMAGE, "photo", image=Image.new("RGBA", (48, 48), (0, 0, 0, 0))))
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(names) == ["image.jpg", "thumb.jpg"]


def test_references_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        MediaStore(tmp_path / "media").resolve("../../etc/passwd")


def test_words_are_kept_beside_the_picture_and_read_back(tmp_path):
    words = (("Revenue", 0.1, 0.2, 0.3, 0.25), ("grew", 0.32, 0.2, 0.4, 0.25), ("naïve", 0.0, 0.0, 1.0, 1.0))
    page = Image.new("RGB", (64, 64), "white")
    store = MediaStore(tmp_path)
    refs = store.put(UID, Unit(0, PAGE, "Report", text="Revenue grew naïve", image=page, page=1, words=words))
    assert refs.words == f"{UID[:2]}/{UID}/words.json" and refs.payload()["words_file"] == refs.words
    assert store.words(refs.words) == words
    assert MediaStore(tmp_path).put(UID + "x", Unit(0, PAGE, "Blank", image=page, page=1)).words is None
    assert (
        MediaStore(tmp_path).put(UID + "y", Unit(0, TEXT, "notes", text="hello")).payload()["words_file"]
        is None
    )


def test_a_missing_or_damaged_words_file_means_no_words(tmp_path):
    store = MediaStore(tmp_path)
    page = Image.new("RGB", (64, 64), "white")
    refs = store.put(UID, Unit(0, PAGE, "Report", image=page, page=1, words=(("a", 0.1, 0.1, 0.2, 0.2),)))
    path = store.resolve(refs.words)
    path.write_text(
        '{"words": [["ok", 0.1, 0.1, 0.2, 0.2], ["bad", 2, 0, 3, 1], [1, 0, 0, 1, 1], '
        '["nan", NaN, 0, 1, 1], ["short", 0.1], ["inverted", 0.5, 0.5, 0.1, 0.1], "junk"]}'
    )
    assert store.words(refs.words) == (("ok", 0.1, 0.1, 0.2, 0.2),)
    path.write_bytes(b"\x00\xff not json")
    assert store.words(refs.words) == ()
    path.unlink()
    assert store.words(refs.words) == ()
    assert store.words(None) == () and store.words("../../etc/passwd") == ()
