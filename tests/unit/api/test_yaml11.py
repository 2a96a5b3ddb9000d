"""Generated YAML quotes every string a YAML 1.1 reader (go-yaml v2: kubectl -f, helm) would
take for a boolean; PyYAML alone quotes only its own booleans, not `y`/`n`."""

from __future__ import annotations

import yaml

from rollwise.api import yaml11


def test_yaml_1_1_booleans_are_quoted_and_other_strings_are_not() -> None:
    data = {"n": 1, "y": "on", "N": ["no", "Off", "yes"], "name": "n1", "true": True}

    text = yaml11.dump(data, sort_keys=False)

    assert text == ("'n': 1\n'y': 'on'\n'N':\n- 'no'\n- 'Off'\n- 'yes'\nname: n1\n'true': true\n")
    assert yaml.safe_load(text) == data
