"""One suite for every stack driver, each on a real site of its kind (stack_conformance_support)."""

from __future__ import annotations

import dataclasses

import pytest
from stack_conformance_support import CONTEXT, DriverCase

from tma_ops.errors import TmaError
from tma_ops.stacks import Change, Component, Update

pytestmark = pytest.mark.integration

# Fixture names of the cases; each support module registers its fixture in conftest.
CASES = [
    "archive_driver_case",
    "wordpress_driver_case",
    "node_driver_case",
    "python_driver_case",
    "docker_driver_case",
]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> DriverCase:
    built: DriverCase = request.getfixturevalue(request.param)
    return built


def planned(case: DriverCase) -> tuple[list[Component], Update]:
    """The case's update as the driver offers it (a driver may offer one version per class)."""
    installed = case.driver.inventory(case.env)
    offered = case.driver.available(case.env, installed)
    wanted = [
        u for u in offered if (u.component, u.to_version) == (case.component, case.to_version)
    ]
    assert wanted, f"{case.component} {case.to_version} not offered: {offered}"
    return installed, wanted[0]


def test_inventory_names_each_component_once_with_a_version(case: DriverCase) -> None:
    installed = case.driver.inventory(case.env)
    names = [c.name for c in installed]
    assert case.component in names
    assert len(names) == len(set(names))
    assert all(c.version for c in installed)


def test_available_offers_the_update_pinned_from_the_installed_version(case: DriverCase) -> None:
    installed, update = planned(case)
    current = next(c for c in installed if c.name == case.component)
    assert (update.from_version, update.to_version) == (current.version, case.to_version)
    assert update.artifact, "an update names the exact artifact it installs"
    assert update.from_version != update.to_version


def test_apply_installs_the_plan_and_says_what_changed(case: DriverCase) -> None:
    _, update = planned(case)
    before = case.served()
    applied = case.driver.apply(case.env, [update], CONTEXT)
    after = {c.name: c.version for c in case.driver.inventory(case.env)}
    assert after[case.component] == case.to_version
    change = Change(case.component, update.from_version, case.to_version)
    assert change in applied.changes
    assert bool(applied.migrations) == case.migrates
    assert case.driver.pending_migrations(case.env) == []
    assert case.served() != before


def test_applying_the_same_plan_again_changes_nothing(case: DriverCase) -> None:
    _, update = planned(case)
    case.driver.apply(case.env, [update], CONTEXT)
    inventory = case.driver.inventory(case.env)
    again = case.driver.apply(case.env, [update], CONTEXT)
    assert again.changes == []
    assert case.driver.inventory(case.env) == inventory


def test_an_update_to_a_version_the_source_does_not_have_fails_and_keeps_the_site(
    case: DriverCase,
) -> None:
    installed, update = planned(case)
    missing = dataclasses.replace(update, to_version="999.0.0", artifact=update.artifact + "-none")
    before = case.served()
    with pytest.raises(TmaError):
        case.driver.apply(case.env, [missing], CONTEXT)
    assert case.driver.inventory(case.env) == installed
    assert case.served() == before
