"""When a missing Chromium fails the browser tests (CI, make test-browser) and when it skips them."""

from __future__ import annotations

import pytest

from tests.browser import browser_required


@pytest.mark.parametrize(
    ("environ", "required"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"CI": "false"}, False),
        ({"HARNESS_REQUIRE_BROWSER": "1"}, True),
        ({"HARNESS_REQUIRE_BROWSER": "0"}, False),
    ],
)
def test_a_missing_browser_fails_under_ci_or_when_required(environ: dict[str, str], required: bool) -> None:
    assert browser_required(environ) is required
