"""Every `test_*` rule of the `*_test.rego` files as its own pytest case, through real OPA."""

from __future__ import annotations

import pytest

from consent.decisions.engine import CompiledPolicy, PolicyBundle, RegoTest, default_policy_root

pytestmark = pytest.mark.policy


def _collect() -> list[RegoTest]:
    bundle = PolicyBundle.load(default_policy_root())
    policy = CompiledPolicy(bundle, with_tests=True)
    try:
        return policy.list_tests(bundle)
    finally:
        policy.close()


REGO_TESTS = _collect()


@pytest.mark.parametrize("rego_test", REGO_TESTS, ids=[t.id for t in REGO_TESTS])
def test_rego(compiled: CompiledPolicy, rego_test: RegoTest) -> None:
    why = compiled.run_test(rego_test)
    assert why is None, f"{rego_test.id}: {why}"


def test_engine_lists_the_same_tests_as_the_sources(
    compiled: CompiledPolicy, bundle: PolicyBundle
) -> None:
    listed = {row["name"] for row in compiled.query("data.consent.decision_test[name]")}
    from_sources = {t.name for t in bundle.rego_tests()}
    assert from_sources == {name for name in listed if name.startswith("test_")}
    assert len(from_sources) >= 40


def test_a_failing_rego_test_is_listed_and_reported(bundle: PolicyBundle) -> None:
    broken = PolicyBundle(
        root=bundle.root,
        modules=bundle.modules,
        test_modules={
            **bundle.test_modules,
            "extra_test.rego": "package extra_test\n\ntest_fails if {\n\t1 == 2\n}\n",
        },
        data=bundle.data,
        revision="sha256:test",
    )
    policy = CompiledPolicy(broken, with_tests=True)
    try:
        tests = {t.id: t for t in policy.list_tests(broken)}
        assert policy.run_test(tests["extra_test.test_fails"]) == "undefined (a condition failed)"
    finally:
        policy.close()
