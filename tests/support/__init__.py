"""Helpers the tests import (not fixtures, not tests). Their asserts get pytest's rewriting like a test module's."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.support.ldap")
