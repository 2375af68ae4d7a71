from packaging.version import Version

from demo_app import Release, newest


def test_picks_the_newest_final_release():
    assert newest(["1.0", "1.10", "1.9", "2.0rc1"]) == Release("1.10")


def test_prereleases_on_request():
    assert newest(["1.0", "2.0rc1"], prereleases=True).version == Version("2.0rc1")


def test_ignores_invalid_versions():
    assert newest(["not a version", "0.3"]) == Release("0.3")


def test_nothing_qualifies():
    assert newest(["oops"]) is None
