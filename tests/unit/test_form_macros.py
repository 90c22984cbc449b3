"""The form macros every page uses: each attribute separate, so browsers see them all."""

import re

from lending.web.templating import build_environment

SOURCE = (
    '{% from "base/forms.html" import field, select, textarea %}'
    '{{ field("x", "X", "v", {"x": "bad"}, type="email", hint="h", autocomplete="off", required=True, '
    'inputmode="tel") }}{{ select("s", "S", [("a", "A")], "a", {"s": "e"}, hint="h") }}'
    '{{ textarea("t", "T", "v", {"t": "e"}, hint="h") }}'
)


def test_controls_carry_every_attribute_separately():
    html = build_environment().from_string(SOURCE).render()
    control = re.search(r"<input [^>]*>", html).group(0)
    for attribute in (
        'autocomplete="off"',
        'inputmode="tel"',
        " required",
        'aria-invalid="true"',
        'aria-describedby="hint-x error-x"',
    ):
        assert attribute in control, control
    assert '"required' not in control and 'required"' not in control.replace('"required"', "")
    assert 'aria-describedby="hint-s error-s"' in html and 'aria-describedby="hint-t error-t"' in html
    assert '<label for="field-x">X</label>' in html
