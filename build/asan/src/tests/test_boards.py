"""Board profiles: the shipped TOML files, the fallback parser for Pythons without tomllib."""
import pytest

from edge_runtime import boards, cli

MIB = 1 << 20


@pytest.fixture
def no_tomllib(monkeypatch):
    """Load profiles as Python 3.9/3.10 would: with the small parser only."""
    monkeypatch.setattr(boards, "tomllib", None)
    monkeypatch.setattr(boards, "_cache", None)
    yield
    boards._cache = None


def test_shipped_profiles():
    b = boards.all_boards()
    assert set(b) >= {"sl2610", "rpi-zero-2w", "rpi4-2gb", "rpi5-4gb", "x86-generic"}
    sl = b["sl2610"]
    assert (sl.cores, sl.default_threads) == (2, 2) and set(sl.isa) == {"neon", "dotprod"}
    assert 1.8 * 1024 <= sl.ram / MIB <= 2.0 * 1024
    zero = b["rpi-zero-2w"]
    assert (zero.ram, zero.cores, zero.isa) == (512 * MIB, 4, ("neon",))
    assert b["rpi4-2gb"].ram == 2048 * MIB and "dotprod" not in b["rpi4-2gb"].isa
    assert b["rpi5-4gb"].ram == 4096 * MIB and "dotprod" in b["rpi5-4gb"].isa
    assert "avx2" in b["x86-generic"].isa
    for board in b.values():
        assert board.budget == board.ram - board.os_reserve > 0
        assert 1 <= board.default_threads <= board.cores


def test_fallback_parser_reads_the_same_profiles(no_tomllib):
    pytest.importorskip("tomllib")
    fallback = boards.all_boards()
    boards._cache = None
    boards.tomllib = __import__("tomllib")
    assert boards.all_boards() == fallback


def test_fallback_parser_subset():
    text = ('# comment\nname = "a # not a comment"  # trailing\ncores = 4\nram_mib = 1_024\n'
            'isa = ["neon", "dotprod",]\nflag = true\nratio = 0.5\nempty = []\n')
    assert boards.parse_flat_toml(text) == {
        "name": "a # not a comment", "cores": 4, "ram_mib": 1024, "isa": ["neon", "dotprod"],
        "flag": True, "ratio": 0.5, "empty": []}
    with pytest.raises(boards.BoardError, match=r"x\.toml:2: expected 'key = value'"):
        boards.parse_flat_toml("a = 1\n[table]\n", "x.toml")
    with pytest.raises(boards.BoardError, match="duplicate key 'a'"):
        boards.parse_flat_toml("a = 1\na = 2\n")
    with pytest.raises(boards.BoardError, match="unsupported value"):
        boards.parse_flat_toml("a = 2025-01-01\n")


def test_bad_profile_is_named():
    with pytest.raises(boards.BoardError, match="p.toml: missing cores"):
        boards.board_from_dict({"name": "p", "description": "", "ram_mib": 1, "os_reserve_mib": 0,
                                "isa": [], "default_threads": 1}, "p.toml")
    with pytest.raises(boards.BoardError, match="must be positive"):
        boards.board_from_dict({"name": "p", "description": "", "ram_mib": 1, "os_reserve_mib": 2,
                                "cores": 1, "isa": [], "default_threads": 1}, "p.toml")


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(boards.BoardError, match="unknown board 'nope'; known boards: .*sl2610"):
        boards.get("nope")


def test_cli_boards(capsys):
    assert cli.main(["boards"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "ram", "os", "reserve"]
    names = [line.split()[0] for line in out[1:]]
    assert names == sorted(boards.all_boards())
    zero = next(line for line in out if line.startswith("rpi-zero-2w"))
    assert "512 MiB" in zero and "352 MiB" in zero
