"""Issue 23, class 2: one rule for every command that writes, so a user's file is never lost.

A target that is medleak's own earlier output of the same kind is replaced only with --force,
and then only medleak's own file names go; a user's file is never replaced, --force or not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medleak.cli import main
from medleak.errors import MedleakError
from medleak.output_targets import claim_file, claim_folder

TINY = ["--quiet", "--image-size", "32", "--batch-size", "2", "--iterations", "2",
        "--channels", "1", "--gallery-size", "2"]  # fmt: skip
TRAIN = ["--quiet", "--threads", "1", "--set", "data.image_size=16", "--set",
         "data.phantom_count=16", "--set", "model.channels=1", "--set", "train.rounds=1",
         "--set", "train.local_steps=1", "--set", "train.clients=2"]  # fmt: skip
PRIOR = ["--quiet", "--threads", "1", "--image-size", "16", "--count", "2", "--epochs", "1",
         "--width", "2"]  # fmt: skip


def _refused(argv: list[str], capsys, words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_attack_never_replaces_a_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my own notes\n")
    (out / "report.html").write_text("<p>my report</p>")
    for extra in ([], ["--force"]):  # no metrics.json: not medleak's run, so --force won't do
        _refused(["attack", *TINY, "--out", str(out), *extra], capsys, "did not write")
    assert (out / "config.yaml").read_text() == "my own notes\n"
    assert (out / "report.html").read_text() == "<p>my report</p>"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    _refused(["attack", *TINY, "--out", str(other)], capsys, "not empty")
    (out / "metrics.json").write_text("[1, 2]")  # not a record medleak wrote either
    _refused(["attack", *TINY, "--out", str(out), "--force"], capsys, "did not write")
    file_out = tmp_path / "a-file"
    file_out.write_text("x")
    _refused(["attack", *TINY, "--out", str(file_out), "--force"], capsys, "is a file")


def test_demo_accepts_force_and_keeps_the_same_rule(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "reconstruction.png").write_bytes(b"my own picture")
    _refused(["demo", "--quiet", "--out", str(out), "--force"], capsys, "did not write")
    assert (out / "reconstruction.png").read_bytes() == b"my own picture"


def test_train_refuses_an_earlier_training_unless_force_and_keeps_user_files(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["train", *TRAIN, "--out", str(out)]) == 0, capsys.readouterr().err
    first = json.loads((out / "train.json").read_text())
    (out / "notes.txt").write_text("mine")
    _refused(["train", *TRAIN, "--out", str(out)], capsys, "already holds a training")
    assert main(["train", *TRAIN, "--set", "seed=1", "--out", str(out), "--force"]) == 0
    second = json.loads((out / "train.json").read_text())
    assert (first["config"]["seed"], second["config"]["seed"]) == (0, 1)
    assert (out / "notes.txt").read_text() == "mine"  # --force removed medleak's names only
    user = tmp_path / "u"
    user.mkdir()
    (user / "train.json").write_text('{"mine": true}')
    _refused(["train", *TRAIN, "--out", str(user), "--force"], capsys, "did not write")
    assert (user / "train.json").read_text() == '{"mine": true}'


def test_train_prior_refuses_an_existing_prior_and_never_replaces_another_file(tmp_path, capsys):
    out = tmp_path / "prior.safetensors"
    assert main(["train-prior", *PRIOR, "--out", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    before = out.read_bytes()
    _refused(["train-prior", *PRIOR, "--out", str(out)], capsys, "--force")
    assert out.read_bytes() == before
    assert main(["train-prior", *PRIOR, "--seed", "1", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != before
    capsys.readouterr()
    mine = tmp_path / "weights.safetensors"
    mine.write_bytes(b"someone's own file")
    _refused(["train-prior", *PRIOR, "--out", str(mine), "--force"], capsys, "is not a prior")
    assert mine.read_bytes() == b"someone's own file"


def test_the_rule_itself_on_folders_and_files(tmp_path: Path):
    def own(folder: Path) -> bool:
        return (folder / "ours.json").is_file()

    def names(folder: Path) -> list[Path]:
        return [folder / "ours.json", folder / "data.bin"]

    claim_folder(tmp_path / "new", what="x", is_own=own, own_files=names, force=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_folder(empty, what="x", is_own=own, own_files=names, force=False)
    ours = tmp_path / "ours"
    ours.mkdir()
    for name in ("ours.json", "data.bin", "keep.txt"):
        (ours / name).write_text(name)
    with pytest.raises(MedleakError, match="already holds"):
        claim_folder(ours, what="x", is_own=own, own_files=names, force=False)
    claim_folder(ours, what="x", is_own=own, own_files=names, force=True)
    assert sorted(p.name for p in ours.iterdir()) == ["keep.txt"]
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / "keep.txt").write_text("k")
    with pytest.raises(MedleakError, match="not empty"):
        claim_folder(beside, what="x", is_own=own, own_files=names, force=False)
    claim_folder(beside, what="x", is_own=own, own_files=names, force=True)  # nothing to lose
    assert (beside / "keep.txt").read_text() == "k"
    target = tmp_path / "f.bin"
    target.write_text("user")
    for force in (False, True):
        with pytest.raises(MedleakError, match="is not a x medleak wrote"):
            claim_file(target, what="x", is_own=lambda p: False, force=force)
    with pytest.raises(MedleakError, match="already exists"):
        claim_file(target, what="x", is_own=lambda p: True, force=False)
    claim_file(target, what="x", is_own=lambda p: True, force=True)
    assert target.read_text() == "user"  # claiming removes nothing: the writer replaces it


def test_findings_replaces_only_its_own_document(tmp_path):
    from medleak.report.findings.document import TITLE, check_writable

    out = tmp_path / "docs"
    out.mkdir()
    doc = out / "FINDINGS.md"
    doc.write_text("# My own findings\n")
    for force in (False, True):
        with pytest.raises(MedleakError, match="did not write|not a findings document"):
            check_writable(out, force)
    doc.write_text(f"{TITLE}\n\nearlier results\n")
    with pytest.raises(MedleakError, match="--force"):
        check_writable(out, False)
    check_writable(out, True)
