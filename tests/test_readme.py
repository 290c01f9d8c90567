"""The README's configuration table lists every setting the code reads, and only those."""

import re
from pathlib import Path

from shared.config import env_names

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.M))
    assert table == set(env_names().values())


def test_readme_has_no_unfilled_sections():
    assert not re.search(r"^[A-Z_]+_SECTION$", README, flags=re.M)
