"""`medleak report` turns several run folders into one offline HTML file."""

from __future__ import annotations

from medleak.cli import main

SMALL = [
    "--image-size",
    "32",
    "--batch-size",
    "2",
    "--iterations",
    "2",
    "--gallery-size",
    "2",
    "--phantom-count",
    "8",
    "--quiet",
]


def test_report_over_two_runs(tmp_path, capsys) -> None:
    runs = []
    for name, extra in (("plain", []), ("signed", ["--defense", "sign"])):
        out = tmp_path / name
        assert main(["attack", *SMALL, *extra, "--out", str(out)]) == 0
        runs.append(str(out))
    report = tmp_path / "both.html"
    assert main(["report", *runs, "--out", str(report)]) == 0
    html = report.read_text()
    assert "plain" in html and "signed" in html
    for attribute in ('src="http', "src='http", 'href="http', "href='http", "url(http"):
        assert attribute not in html
    assert "report written" in capsys.readouterr().out


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.json" in err[0]
