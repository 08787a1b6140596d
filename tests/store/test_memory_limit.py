"""FORENSICS_MEMORY_LIMIT and FORENSICS_TEMP_DIRECTORY: applied to every toolkit connection.

The settings are read back from DuckDB's own ``duckdb_settings()``; the spill test proves that
DuckDB writes its temporary files where the variable says, not merely that the setting reads
back.
"""

from __future__ import annotations

import pytest

import toolkit as tk
from toolkit.errors import InvalidParameterError

MIB = 1024**2


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in ("FORENSICS_MEMORY_LIMIT", "FORENSICS_TEMP_DIRECTORY", "FORENSICS_THREADS"):
        monkeypatch.delenv(name, raising=False)


def _settings(con) -> dict[str, str]:
    rows = con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('memory_limit', "
        "'temp_directory')"
    ).fetchall()
    return dict(rows)


def _mib(value: str) -> float:
    """DuckDB prints the limit as e.g. '953.6 MiB' or '3.7 GiB'."""
    number, unit = value.split()
    return float(number) * {"MiB": 1, "GiB": 1024}[unit]


def _close_to(printed: str, expected_mib: float) -> bool:
    """``printed`` (one decimal, in MiB or GiB; DuckDB truncates) is ``expected_mib``."""
    resolution = 0.1 * (1024 if printed.endswith("GiB") else 1)
    return abs(_mib(printed) - expected_mib) <= resolution + 1e-9


@pytest.mark.parametrize(("limit", "expected_mib"), [("4GB", 4e9 / MIB), ("4GiB", 4096),
                                                     ("1536MiB", 1536), ("0.5GiB", 512),
                                                     ("700mb", 7e8 / MIB)])
def test_memory_limit_from_the_environment_is_applied(monkeypatch, tmp_path, limit,
                                                      expected_mib):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", limit)
    con = tk.connect(tmp_path / "case.duckdb")
    assert _close_to(_settings(con)["memory_limit"], expected_mib)
    con.close()
    # a read-only connection (how the diagnostics open a case) gets it too
    reader = tk.connect(tmp_path / "case.duckdb", read_only=True)
    assert _close_to(_settings(reader)["memory_limit"], expected_mib)


def test_argument_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", "4GB")
    monkeypatch.setenv("FORENSICS_TEMP_DIRECTORY", str(tmp_path / "from_env"))
    con = tk.connect(memory_limit="256MiB", temp_directory=tmp_path / "from_arg")
    settings = _settings(con)
    assert _close_to(settings["memory_limit"], 256)
    assert settings["temp_directory"] == str(tmp_path / "from_arg")


def test_temp_directory_from_the_environment_is_created_and_applied(monkeypatch, tmp_path):
    spill = tmp_path / "deep" / "spill"
    monkeypatch.setenv("FORENSICS_TEMP_DIRECTORY", str(spill))
    con = tk.connect(tmp_path / "case.duckdb")
    assert _settings(con)["temp_directory"] == str(spill)
    assert spill.is_dir()


def test_relative_temp_directory_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORENSICS_TEMP_DIRECTORY", "spill")
    con = tk.connect()
    assert _settings(con)["temp_directory"] == str(tmp_path / "spill")


def test_data_beyond_the_limit_spills_into_the_temp_directory(monkeypatch, tmp_path):
    """~190 MB of strings under a 100MB limit: DuckDB must evict blocks to our folder."""
    spill = tmp_path / "spill"
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", "100MB")
    monkeypatch.setenv("FORENSICS_TEMP_DIRECTORY", str(spill))
    con = tk.connect()
    con.execute("CREATE TEMP TABLE big AS SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) "
                "AS s FROM range(3000000) t(i)")
    files = con.execute("SELECT path, size FROM duckdb_temporary_files()").fetchall()
    assert files, "nothing spilled under a 100MB limit"
    assert all(path.startswith(str(spill) + "/") for path, _ in files)
    assert sum(size for _, size in files) > 50 * MIB
    # and the data is all there: 3M rows of 64 characters
    assert con.execute("SELECT count(*), sum(length(s)) FROM big").fetchone() == (3000000,
                                                                                 192000000)


@pytest.mark.parametrize("value", ["lots", "4 GBs", "-1GB", "GB", "4G"])
def test_malformed_memory_limit_in_the_environment_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", value)
    with pytest.raises(InvalidParameterError) as info:
        tk.connect()
    message = str(info.value)
    assert message.startswith("FORENSICS_MEMORY_LIMIT must be a memory size")
    assert repr(value) in message
    assert "\n" not in message


def test_malformed_memory_limit_argument_names_the_argument(monkeypatch):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", "4GB")  # fine, and overridden
    with pytest.raises(InvalidParameterError, match=r"^memory_limit must be a memory size"):
        tk.connect(memory_limit="a lot")


def test_too_small_memory_limit_names_the_variable(monkeypatch):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", "10MB")
    with pytest.raises(InvalidParameterError, match=r"^FORENSICS_MEMORY_LIMIT=10MB is too small"):
        tk.connect()


def test_temp_directory_that_is_a_file_names_the_variable(monkeypatch, tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    monkeypatch.setenv("FORENSICS_TEMP_DIRECTORY", str(afile))
    with pytest.raises(InvalidParameterError,
                       match=r"^FORENSICS_TEMP_DIRECTORY=.*notes\.txt: .* is a file"):
        tk.connect()


def test_temp_directory_that_cannot_be_created_names_the_variable(monkeypatch, tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    monkeypatch.setenv("FORENSICS_TEMP_DIRECTORY", str(afile / "spill"))
    with pytest.raises(InvalidParameterError,
                       match=r"^FORENSICS_TEMP_DIRECTORY=.*spill: cannot create"):
        tk.connect()
