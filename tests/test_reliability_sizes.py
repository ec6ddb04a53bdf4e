"""Issue 23, class 5: runaway sizes are refused in one line before any work (memory for data,
the number of runs in a sweep, a Ray address nobody answers at)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures

import pytest
import yaml

from medleak.cli import main
from medleak.data import DataSpec, open_dataset
from medleak.errors import ConfigError, DataError


def _line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_sweep_of_too_many_runs_is_refused_before_expanding(tmp_path, capsys):
    spec = tmp_path / "huge.yaml"
    axis = list(range(100))
    spec.write_text(yaml.safe_dump({"grid": {"seed": axis, "data.offset": axis, "fl.local_steps": [
        i + 1 for i in axis]}}))  # fmt: skip
    store = tmp_path / "s.db"
    started = time.monotonic()
    assert main(["sweep", str(spec), "--store", str(store), "--quiet"]) == 2
    assert "1000000 runs" in _line(capsys) and time.monotonic() - started < 20
    assert not store.exists()  # refused before the store was created
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({"grid": {"seed": [0, 1, 2]}, "list": [{"seed": 9}]}))
    assert main(["sweep", str(small), "--store", str(store), "--max-runs", "3"]) == 2
    assert "4 runs" in _line(capsys) and not store.exists()
    assert main(["sweep", str(small), "--store", str(store), "--max-runs", "4", "--check"]) == 0


def test_loading_more_images_than_memory_holds_is_one_line(tmp_path, capsys, monkeypatch):
    argv = ["train-prior", "--quiet", "--count", "100000", "--image-size", "1024", "--out",
            str(tmp_path / "p.safetensors")]  # fmt: skip
    assert main(argv) == 2
    assert "GiB" in _line(capsys) and not (tmp_path / "p.safetensors").exists()
    train = ["train", "--quiet", "--set", "data.phantom_count=100000", "--set",
             "data.image_size=1024", "--out", str(tmp_path / "t")]  # fmt: skip
    assert main(train) == 2
    assert "GiB" in _line(capsys)
    from medleak.data import dataset

    monkeypatch.setattr(dataset, "available_bytes", lambda: 1000)
    data = open_dataset(DataSpec(image_size=16, phantom_count=8), seed=0)
    with pytest.raises(DataError, match="needs about"):
        data.load(range(4))


def test_a_phantom_count_beyond_the_range_is_refused_at_parse_time(capsys):
    started = time.monotonic()
    assert main(["attack", "--phantom-count", "1000000000", "--quiet"]) == 2
    assert "--phantom-count" in _line(capsys) and time.monotonic() - started < 20


def test_a_ray_address_that_does_not_answer_is_one_line_within_seconds(tmp_path, capsys):
    from medleak.experiments.ray_backend import check_reachable

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    held: list = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    for address, words in [
        (f"127.0.0.1:{closed_port}", "no Ray cluster answers"),
        (f"ray://127.0.0.1:{closed_port}", "no Ray cluster answers"),
        (f"127.0.0.1:{silent.getsockname()[1]}", "answers"),  # accepts, says nothing
        ("no-such-host.invalid:6379", "no Ray cluster answers"),
        ("127.0.0.1:70000", "not a port"),
    ]:
        started = time.monotonic()
        with pytest.raises(ConfigError, match=words):
            check_reachable(address, timeout=2.0)
        assert time.monotonic() - started < 10
    check_reachable("auto")  # no port: Ray's own lookup
    grpc = pytest.importorskip("grpc")
    server = grpc.server(futures.ThreadPoolExecutor(1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        check_reachable(f"127.0.0.1:{port}", timeout=5.0)  # a gRPC server answers: accepted
    finally:
        server.stop(0)
        silent.close()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"base": {"attack": {"iterations": 1}}}))
    pytest.importorskip("ray")
    argv = ["sweep", str(spec), "--store", str(tmp_path / "s.db"), "--backend", "ray",
            "--address", f"127.0.0.1:{closed_port}"]  # fmt: skip
    assert main(argv) == 2
    assert "no Ray cluster answers" in _line(capsys) and not (tmp_path / "s.db").exists()
