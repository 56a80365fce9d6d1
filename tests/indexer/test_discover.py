"""What ``discover`` takes and what it passes over (with the reason), on real folders and links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indexer.ingest import FAILED, SKIPPED, IngestReport, Shard, discover


@pytest.fixture
def tree(tmp_path) -> Path:
    """docs/ holds files of every kind of interest; outside/ is a folder that is not given."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "sub" / "deeper").mkdir(parents=True)
    (docs / ".git").mkdir()
    outside.mkdir()
    (docs / "notes.txt").write_text("notes")
    (docs / "book.epub").write_bytes(b"PK\x03\x04 not really")
    (docs / "Makefile").write_text("all:")
    (docs / ".secret.txt").write_text("hidden")
    (docs / ".git" / "config.txt").write_text("inside a hidden folder")
    (docs / "sub" / "page.md").write_text("# page")
    (docs / "sub" / "deeper" / "deep.txt").write_text("deep")
    (outside / "passwords.txt").write_text("not for the index")
    (outside / "folder").mkdir()
    (outside / "folder" / "more.txt").write_text("also outside")
    os.symlink(outside / "passwords.txt", docs / "link-out.txt")
    os.symlink(outside / "folder", docs / "linked-folder")
    os.symlink(docs / "notes.txt", docs / "link-in.txt")
    os.symlink(docs / "sub", docs / "sub-again")  # a link to a folder already read
    os.symlink(docs, docs / "sub" / "loop")  # back up the tree: must not loop
    os.symlink(tmp_path / "gone.txt", docs / "dangling.txt")
    os.mkfifo(docs / "pipe.txt")
    return tmp_path


def reasons(results) -> dict[str, str]:
    return {Path(r.source).name: r.reason for r in results if r.status == SKIPPED}


def test_a_folder_lists_what_it_takes_and_why_it_skips_the_rest(tree):
    docs = tree / "docs"
    files, results = discover([docs])
    assert files == [(docs / "notes.txt").resolve()]  # link-in.txt is the same file
    skipped = reasons(results)
    outside = (tree / "outside").resolve()
    assert skipped == {
        ".git": "hidden",
        ".secret.txt": "hidden",
        "Makefile": "unsupported type (no extension)",
        "dangling.txt": "a broken link",
        "link-out.txt": f"resolves outside the folders given, to {outside / 'passwords.txt'}",
        "linked-folder": f"resolves outside the folders given, to {outside / 'folder'}",
        "pipe.txt": "not a regular file",
        "book.epub": "unsupported type '.epub'",
        "sub": "a sub-folder, read only with --recursive",
        "sub-again": "a sub-folder, read only with --recursive",
    }
    assert all(r.status in (SKIPPED, FAILED) for r in results)


def test_recursive_descends_once_and_never_leaves_the_folders_given(tree):
    docs = tree / "docs"
    files, results = discover([docs], recursive=True)
    assert files == sorted(
        p.resolve()
        for p in (docs / "notes.txt", docs / "sub" / "page.md", docs / "sub" / "deeper" / "deep.txt")
    )
    skipped = reasons(results)
    assert "config.txt" not in skipped and skipped[".git"] == "hidden"  # one entry for a hidden folder
    assert skipped["linked-folder"].startswith("resolves outside the folders given")
    assert "loop" not in skipped and "sub-again" not in skipped  # links to folders already read
    assert not any(str(tree / "outside") in str(f) for f in files)


def test_follow_external_links_takes_what_they_point_to(tree):
    docs = tree / "docs"
    files, results = discover([docs], recursive=True, follow_external_links=True)
    outside = tree / "outside"
    assert (outside / "passwords.txt").resolve() in files
    assert (outside / "folder" / "more.txt").resolve() in files
    assert "link-out.txt" not in reasons(results)


def test_a_file_named_directly_is_a_root_of_its_own(tree):
    docs, secret = tree / "docs", tree / "outside" / "passwords.txt"
    # Named on the command line: taken, even through a link, and a link to it in a folder is inside.
    files, results = discover([docs, secret])
    assert secret.resolve() in files
    assert "link-out.txt" not in reasons(results)
    files, _ = discover([docs / "link-out.txt"])
    assert files == [secret.resolve()]
    # A file named directly is taken whatever its type: indexing it then fails with the reason.
    files, results = discover([docs / "book.epub"])
    assert files == [(docs / "book.epub").resolve()] and not results


def test_missing_paths_fail_and_the_report_counts_and_lists_skipped_files(tree):
    _, results = discover([tree / "docs", tree / "nowhere"])
    report = IngestReport(files=results)
    assert report.failed == 1
    assert report.summary()["skipped"] == len(report.skipped_files) == 10
    data = json.loads(report.to_json())
    assert data["summary"]["skipped"] == 10
    entry = next(f for f in data["files"] if f["source"].endswith("book.epub"))
    assert entry["status"] == "skipped" and entry["reason"] == "unsupported type '.epub'"
    missing = next(f for f in data["files"] if f["status"] == "failed")
    assert missing["error"].endswith("nowhere: no such file or folder")


def test_shards_split_skipped_entries_too(tree):
    _, whole = discover([tree / "docs"], recursive=True)
    parts = [discover([tree / "docs"], recursive=True, shard=Shard(i, 3))[1] for i in (1, 2, 3)]
    assert sorted(r.source for part in parts for r in part) == sorted(r.source for r in whole)


def test_subtitles_beside_a_video_are_named_as_read_with_it(tmp_path):
    for name in ("talk.mp4", "talk.srt", "talk.en.vtt", "lecture.MKV", "lecture.fr.srt", "orphan.srt"):
        (tmp_path / name).write_bytes(b"\0")
    files, results = discover([tmp_path])
    assert [p.name for p in files] == ["lecture.MKV", "talk.mp4"]
    assert reasons(results) == {
        "talk.srt": "subtitles, read with talk.mp4",
        "talk.en.vtt": "subtitles not used: talk.mp4 reads talk.srt",
        "lecture.fr.srt": "subtitles, read with lecture.MKV",
        "orphan.srt": "subtitles with no video of the same name beside them",
    }
